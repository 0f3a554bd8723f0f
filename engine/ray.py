"""Classify an image archive on a Ray cluster (`pip install ".[ray]"`):

    ds = engine.ray.read_images(['s3://bucket/photos/', '/shared/more/'])
    out = engine.ray.classify_dataset(ds, 'model.engine', top_k=5)
    out.write_parquet('results.parquet')

Each actor of the pool holds one loaded Model (sent from the driver: the
workers need not have the file); each image is decoded and preprocessed as
the single-process path does it (engine.classify.classify_batch on the
file's bytes), so the results are the same bit for bit. A file that cannot
be decoded gets its error in its row and the job goes on. Rows are written
by the workers: nothing is collected on the driver, and they come in no
particular order. Ray restarts an actor that dies and runs its batches again."""
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


def read_images(sources):
    """A Dataset of ('bytes', 'path') rows: local files and folders (the
    files `classify` without Ray would read, by absolute path: a cluster's
    nodes must all see them, on a shared file system) and URIs Ray reads
    (s3://, gs://, ...: the image suffixes under them). Reading asks for no
    CPU: it only moves bytes, the actors decode, and reads that asked for a
    core would wait behind actors holding every core."""
    from engine.classify import collect
    ray = _ray()
    uris = [s for s in sources if '://' in s]
    files, problems = collect([s for s in sources if '://' not in s])
    if problems:
        raise ValueError('; '.join(f'{p}: {why}' for p, why in problems))
    read = dict(include_paths=True, ray_remote_args={'num_cpus': 0})
    parts = ([ray.data.read_binary_files([os.path.abspath(f) for f in files], **read)] if files else []) + \
        ([ray.data.read_binary_files(uris, file_extensions=[s.lstrip('.') for s in IMAGE_SUFFIXES], **read)]
         if uris else [])
    if not parts:
        raise ValueError('no images found in ' + ', '.join(sources))
    return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]


class _Classifier:
    """The actor: one Model, and its preprocessing, for the whole job."""

    def __init__(self, model, top_k, threads, preprocessing):
        model.threads = threads
        self.model, self.top_k = model, top_k
        self.spec = model.preprocessing_with(preprocessing)

    def __call__(self, batch):
        import pyarrow as pa
        from engine.classify import classify_batch
        paths = [str(p) for p in batch['path']]
        rows = classify_batch(self.model, self.spec, [io.BytesIO(bytes(b)) for b in batch['bytes']], paths,
                              self.top_k)
        return pa.table({
            'path': pa.array(paths, pa.string()),
            'labels': pa.array([[label for label, _ in top or ()] for top, _ in rows], pa.list_(pa.string())),
            'probabilities': pa.array([[float(p) for _, p in top or ()] for top, _ in rows],
                                      pa.list_(pa.float32())),      # the model's own, bit for bit
            'error': pa.array([error or '' for _, error in rows], pa.string())})


def classify_dataset(ds, model, *, top_k=5, threads=THREADS_PER_ACTOR, actors=None, batch_size=16,
                     preprocessing=None):
    """A Ray Dataset of one row per row of ds (which has 'bytes' and 'path'
    columns, as read_images makes them): path, labels and probabilities (the
    top_k), error ('' when the image was read).

    model: a Model or a model file's path (read here, on the driver).
    threads: cores per actor; actors: how many (default: the cluster's CPUs
    divided by threads). If ds was read some other way, read with
    ray_remote_args={'num_cpus': 0}, or leave a core free of actors: reads
    waiting for a core the actors hold never end."""
    ray = _ray()
    if not hasattr(model, 'preprocessing_with'):
        import engine
        model = engine.load(model, threads=threads)
    if actors is None:
        actors = max(1, int(ray.cluster_resources().get('CPU', 1) // threads))
    return ds.map_batches(_Classifier, fn_constructor_args=(model, top_k, threads, preprocessing),
                          batch_size=batch_size, batch_format='numpy', concurrency=actors, num_cpus=threads)


# suffix -> (Ray Data's writer and pyarrow's reader, the writer's options)
OUTPUT_FORMATS = {'.parquet': ('parquet', {}),
                  '.jsonl': ('json', {'double_precision': 15})}   # pandas' default 10 digits would round float32s


def output_format(path):
    """(format, writer options) of an output folder, by its suffix."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in OUTPUT_FORMATS:
        raise ValueError(f'--output {path}: the name must end in ' + ' or '.join(OUTPUT_FORMATS))
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
