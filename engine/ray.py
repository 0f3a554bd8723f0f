"""Classify an image archive on a Ray cluster (`pip install ".[ray]"`):

    ds = engine.ray.read_images(['/shared/photos/'])     # or ['s3://bucket/photos/']
    out = engine.ray.classify_dataset(ds, 'model.engine', top_k=5)
    out.write_parquet('results.parquet')

Each actor of the pool holds one loaded Model (sent from the driver: the
workers need not have the file); each image is decoded and preprocessed as
the single-process path does it (engine.classify.classify_batch), so the
results are the same bit for bit. A file that cannot be decoded gets its
error in its row and the job goes on. Rows are written by the workers:
nothing is collected on the driver, and they come in no particular order.
Ray restarts an actor that dies and runs its batches again."""
import io
import os

from engine.preprocess import IMAGE_SUFFIXES

THREADS_PER_ACTOR = 1   # one actor per core: decoding is single-threaded Python, the model small


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data is the [data] extra of ray)
    except ImportError:
        raise ImportError('this needs Ray Data: pip install "shufflenet-engine[ray]" '
                          '(or pip install "ray[data]")') from None
    return ray


# Rows an actor takes at a time, and local paths per block of the input (a block is what an actor
# takes on, and what a restarted one does again): Ray spends ~20 ms a call here, whatever its size.
ROWS_PER_CALL = 256


def read_images(sources, rows_per_block=ROWS_PER_CALL):
    """A Dataset of the images of sources, either local files and folders or
    URIs, not both: for local ones, 'path' rows (the files `classify` without
    Ray reads, by absolute path: a cluster's nodes must all see them, on a
    shared file system), the actors reading the files themselves (Ray Data
    reads small local files at ~1 ms each here, more than the model takes);
    for URIs Ray reads (s3://, gs://, ...), 'path' and 'bytes' rows of the
    image suffixes under them, read by Ray's tasks, which ask for no CPU:
    reads that asked for a core would wait behind actors holding every core."""
    import pyarrow as pa
    from engine.classify import collect
    ray = _ray()
    uris = [s for s in sources if '://' in s]
    if uris and len(uris) < len(sources):
        raise ValueError('give local files and folders or URIs, not both in one job')
    if uris:
        return ray.data.read_binary_files(uris, include_paths=True, ray_remote_args={'num_cpus': 0},
                                          file_extensions=[s.lstrip('.') for s in IMAGE_SUFFIXES])
    files, problems = [], []
    for source in sources:          # each walked once, an image-less folder named
        found, missing = collect([source])
        files += found
        problems += missing or ([] if found else [(source, 'no images in this folder')])
    if problems:
        raise ValueError('; '.join(f'{p}: {why}' for p, why in problems))
    files = [os.path.abspath(f) for f in files]
    return ray.data.from_arrow([pa.table({'path': pa.array(files[i:i + rows_per_block], pa.string())})
                                for i in range(0, len(files), rows_per_block)])


class _Classifier:
    """The actor: one Model, and its preprocessing, for the whole job."""

    def __init__(self, model, top_k, threads, batch_size, preprocessing):
        model.threads = threads
        self.model, self.top_k, self.batch_size = model, top_k, batch_size
        self.spec = model.preprocessing_with(preprocessing)

    def __call__(self, batch):
        import pyarrow as pa
        from engine.classify import classify_batch
        paths = [str(p) for p in batch['path']]
        images = [io.BytesIO(bytes(b)) for b in batch['bytes']] if 'bytes' in batch else paths
        rows = []
        for i in range(0, len(paths), self.batch_size):
            rows += classify_batch(self.model, self.spec, images[i:i + self.batch_size],
                                   paths[i:i + self.batch_size], self.top_k)
        return pa.table({
            'path': pa.array(paths, pa.string()),
            'labels': pa.array([[label for label, _ in top or ()] for top, _ in rows], pa.list_(pa.string())),
            'probabilities': pa.array([[float(p) for _, p in top or ()] for top, _ in rows],
                                      pa.list_(pa.float32())),      # the model's own, bit for bit
            'error': pa.array([error or '' for _, error in rows], pa.string())})


def classify_dataset(ds, model, *, top_k=5, threads=THREADS_PER_ACTOR, actors=None, batch_size=16,
                     rows_per_call=ROWS_PER_CALL, preprocessing=None):
    """A Ray Dataset of one row per row of ds (a 'path' column, and the
    files' 'bytes' if they are not to be read from the paths, as read_images
    makes it): path, labels and probabilities (the top_k), error ('' when
    the image was read).

    model: a Model or a model file's path (read here, on the driver).
    threads: cores per actor; actors: how many (default: the cluster's CPUs
    divided by threads); batch_size: images per run of the model;
    rows_per_call: rows an actor is handed at a time (Ray's batch). If ds
    was read some other way, read with ray_remote_args={'num_cpus': 0}, or
    leave a core free of actors: reads waiting for a core the actors hold
    never end."""
    ray = _ray()
    if not hasattr(model, 'preprocessing_with'):
        import engine
        model = engine.load(model, threads=threads)
    if actors is None:
        actors = max(1, int(ray.cluster_resources().get('CPU', 1) // threads))
    return ds.map_batches(_Classifier, fn_constructor_args=(model, top_k, threads, batch_size, preprocessing),
                          batch_size=rows_per_call, batch_format='numpy',
                          compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=threads)


# Ray's writers: rows per file, not a file per block (per 256 images); an existing output refused,
# not added to (Ray's default)
WRITE_OPTIONS = {'min_rows_per_file': 16384, 'mode': 'create'}
# suffix -> (Ray Data's writer and pyarrow's reader, the writer's options)
OUTPUT_FORMATS = {'.parquet': ('parquet', WRITE_OPTIONS),
                  '.jsonl': ('json', dict(WRITE_OPTIONS, double_precision=15))}   # pandas' 10 digits round float32s


def output_format(path):
    """(format, writer options) of an output folder, by its suffix; a local
    one that exists is refused before any work is done."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in OUTPUT_FORMATS:
        raise ValueError(f'--output {path}: the name must end in ' + ' or '.join(OUTPUT_FORMATS))
    if '://' not in path and os.path.lexists(path):
        raise ValueError(f'--output {path} exists: remove it or name another (rows are not added to old ones)')
    return OUTPUT_FORMATS[suffix]


def classify_to_files(sources, model, output, *, address=None, **options):
    """The `classify --ray` job: connect to the cluster at address (None: the
    running one, or a local one started here), classify every image of the
    sources and write the rows into the folder `output` (Parquet or JSON
    lines files, by its suffix). Returns (rows, errors) counted from the
    files written."""
    import pyarrow.dataset
    ray = _ray()
    fmt, writer_options = output_format(output)
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    getattr(classify_dataset(read_images(sources), model, **options), 'write_' + fmt)(output, **writer_options)
    errors = pyarrow.dataset.dataset(output, format=fmt).to_table(columns=['error'])['error'].to_pylist()
    return len(errors), sum(bool(e) for e in errors)
