/* The engine's thread pool: persistent workers that run one task at a time
 * with the calling thread, a barrier between the steps of a task, and job
 * claiming with stealing.
 *
 * Why not OpenMP: libgomp's waiting threads spin for a long time (300,000
 * iterations) before they sleep.  On a machine whose cores are taken by
 * other programs (a Raspberry Pi running a camera pipeline) a spinning
 * thread holds its core while the thread it waits for is descheduled, and
 * a run took 100 times longer.  Here a waiting thread spins for at most
 * ENGINE_SPIN_NS, then sleeps on a futex (elsewhere: short naps), and a
 * thread that finds its own share of an op's jobs done takes the jobs other
 * threads have not started, so a descheduled thread holds up an op by at
 * most the job it is in.  (Whether to use the threads at all while other
 * programs have the cores is measured and decided above this, per model:
 * engine/model.py.)
 *
 * One pool per process.  A second caller while a task runs (two Python
 * threads calling models at once) runs its task alone on its own thread
 * rather than oversubscribing the cores.  Each worker has its own wake-up
 * event, so a task of two threads wakes one worker however large the pool.
 * After fork() the child starts with no workers (they were not copied) and
 * makes new ones.
 *
 * On Linux each worker stays on one CPU (engine_pin_worker); the caller's
 * thread is left where the scheduler puts it. */
#ifndef ENGINE_POOL_H
#define ENGINE_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
/* CPU affinity needs glibc's GNU extensions (Python.h turns them on first) */
#if defined(__linux__) && defined(_GNU_SOURCE) && defined(CPU_SET)
#define ENGINE_PIN_WORKERS 1
#else
#define ENGINE_PIN_WORKERS 0
#endif

#define ENGINE_MAX_THREADS 64
#ifndef ENGINE_SPIN_NS
#define ENGINE_SPIN_NS 100000       /* 100 us: longer than an op's imbalance, shorter than a time slice */
#endif

typedef void (*engine_task_fn)(void* arg, int tid, int team);

/* A thread's share of a step's jobs, [next, end): its owner claims them
 * from the front, and so do threads done with their own (stealing). */
typedef struct {
    _Alignas(64) atomic_llong next;
    long long end;
} engine_share;

static inline void engine_share_set(engine_share* s, long long begin, long long end) {
    atomic_store_explicit(&s->next, begin, memory_order_relaxed);
    s->end = end;
}

/* The next job of the share, or a number >= its end when none is left. */
static inline long long engine_claim(engine_share* s) {
    return atomic_fetch_add_explicit(&s->next, 1, memory_order_relaxed);
}

typedef struct {
    _Alignas(64) atomic_uint value;     /* a generation counter threads wait on */
    atomic_int sleepers;
} engine_event;

typedef struct {
    pthread_mutex_t grow;               /* held while workers are added */
    atomic_int busy;                    /* a task is running */
    int workers;                        /* started worker threads: tids 1..workers */
    int home;                           /* the CPU the first worker was made from */
    engine_task_fn fn;                  /* the running task, written before its workers are woken */
    void* arg;
    int team;                           /* threads in the running task, the caller included */
    engine_event start[ENGINE_MAX_THREADS];   /* per worker: bumped to give it the task */
    unsigned born[ENGINE_MAX_THREADS];        /* start[tid] when the worker was made */
    engine_event finished;              /* bumped when the last worker is done */
    _Alignas(64) atomic_int running;    /* workers still in the task */
    _Alignas(64) atomic_int arrived;    /* at the barrier */
    engine_event barrier;
} engine_pool;

static engine_pool engine_the_pool = {PTHREAD_MUTEX_INITIALIZER};

static inline uint64_t engine_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static inline void engine_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}

/* Wait until e->value differs from seen: spin, then sleep. */
static void engine_event_wait(engine_event* e, unsigned seen) {
    uint64_t deadline = 0;
    for (unsigned i = 0; atomic_load_explicit(&e->value, memory_order_acquire) == seen; i++) {
        engine_cpu_relax();
        if ((i & 63) != 63)
            continue;
        uint64_t now = engine_now_ns();
        if (!deadline)
            deadline = now + ENGINE_SPIN_NS;
        else if (now > deadline)
            break;
    }
    while (atomic_load_explicit(&e->value, memory_order_acquire) == seen) {
        atomic_fetch_add(&e->sleepers, 1);
#ifdef __linux__
        if (atomic_load(&e->value) == seen)
            syscall(SYS_futex, &e->value, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
#else
        if (atomic_load(&e->value) == seen) {
            struct timespec nap = {0, 50000};
            nanosleep(&nap, NULL);
        }
#endif
        atomic_fetch_sub(&e->sleepers, 1);
    }
}

static void engine_event_signal(engine_event* e) {
    atomic_fetch_add_explicit(&e->value, 1, memory_order_release);
#ifdef __linux__
    if (atomic_load(&e->sleepers) > 0)
        syscall(SYS_futex, &e->value, FUTEX_WAKE_PRIVATE, ENGINE_MAX_THREADS, NULL, NULL, 0);
#endif
}

/* Every thread of a task of `team` threads calls it between two steps; the
 * last to arrive runs last(arg) (to set up the next step) before releasing
 * the others.  Only the pool's running task has team > 1. */
static void engine_pool_barrier(int team, void (*last)(void*), void* arg) {
    engine_pool* p = &engine_the_pool;
    if (team <= 1) {
        if (last)
            last(arg);
        return;
    }
    unsigned seen = atomic_load(&p->barrier.value);
    if (atomic_fetch_add(&p->arrived, 1) == team - 1) {
        atomic_store(&p->arrived, 0);
        if (last)
            last(arg);
        engine_event_signal(&p->barrier);
    } else {
        engine_event_wait(&p->barrier, seen);
    }
}

/* Worker tid onto one CPU: the tid-th the process may use after home
 * (cyclically), so workers take the other CPUs first.  Why: on a 2-vCPU
 * VM a worker woken from its futex after an idle pause was run on its
 * caller's CPU for the next ten or so runs (two-thread runs of
 * MobileNetV3-small up to 2.5x their steady time, and the model's thread
 * choice took that for busy cores and ran one thread); with the worker
 * pinned, 137-138 of 140 runs in blocks of ten after 0.2 s pauses kept
 * two threads instead of 53-78, and took 1.23-1.39 ms, not 1.92-2.33.
 * Without an affinity call (other systems), or where it fails, workers
 * float as before. */
static void engine_pin_worker(int tid) {
#if ENGINE_PIN_WORKERS
    cpu_set_t allowed, one;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || CPU_COUNT(&allowed) < 2)
        return;
    int nth = (tid - 1) % CPU_COUNT(&allowed) + 1, seen = 0;
    for (int step = 1; step <= CPU_SETSIZE; step++) {
        int cpu = (engine_the_pool.home + step) % CPU_SETSIZE;
        if (CPU_ISSET(cpu, &allowed) && ++seen == nth) {
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            pthread_setaffinity_np(pthread_self(), sizeof one, &one);
            return;
        }
    }
#else
    (void)tid;
#endif
}

/* A worker runs the tasks it is given, one at a time: the caller gives the
 * next only when every worker of the last is done, so the task's fields
 * are stable while a worker reads them. */
static void* engine_worker(void* arg) {
    engine_pool* p = &engine_the_pool;
    int tid = (int)(intptr_t)arg;
    unsigned seen = p->born[tid];       /* not a fresh load: its first task may be given already */
    engine_pin_worker(tid);
    for (;;) {
        engine_event_wait(&p->start[tid], seen);
        seen = atomic_load(&p->start[tid].value);
        p->fn(p->arg, tid, p->team);
        if (atomic_fetch_sub(&p->running, 1) == 1)
            engine_event_signal(&p->finished);
    }
    return NULL;
}

static void engine_pool_after_fork(void) {
    engine_pool* p = &engine_the_pool;
    pthread_mutex_init(&p->grow, NULL);
    p->workers = 0;                     /* the child has none of the parent's threads */
    atomic_store(&p->busy, 0);
    for (int i = 0; i < ENGINE_MAX_THREADS; i++)
        atomic_store(&p->start[i].sleepers, 0);
    atomic_store(&p->finished.sleepers, 0);
    atomic_store(&p->barrier.sleepers, 0);
    atomic_store(&p->arrived, 0);
}

/* Threads that can run with the caller: at most want - 1, fewer if they
 * cannot be started. */
static int engine_pool_grow(int want) {
    engine_pool* p = &engine_the_pool;
    static int fork_handler = 0;
    pthread_mutex_lock(&p->grow);
    if (!fork_handler)
        fork_handler = pthread_atfork(NULL, NULL, engine_pool_after_fork) == 0;
#if ENGINE_PIN_WORKERS
    if (p->workers == 0 && want > 1) {
        int cpu = sched_getcpu();
        p->home = cpu > 0 ? cpu : 0;
    }
#endif
    while (p->workers < want - 1 && p->workers < ENGINE_MAX_THREADS - 1) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        p->born[p->workers + 1] = atomic_load(&p->start[p->workers + 1].value);
        int failed = pthread_create(&t, &attr, engine_worker, (void*)(intptr_t)(p->workers + 1));
        pthread_attr_destroy(&attr);
        if (failed)
            break;
        p->workers++;
    }
    int workers = p->workers;
    pthread_mutex_unlock(&p->grow);
    return workers;
}

/* Run fn(arg, tid, team) on `team` threads, this one as tid 0, and return
 * when all are done; the team actually used (1 when the pool is busy with
 * another caller's task, or has no threads to give).  init(arg, team) runs
 * first, on this thread, once the team is known. */
static int engine_pool_run(engine_task_fn fn, void (*init)(void*, int), void* arg, int team) {
    engine_pool* p = &engine_the_pool;
    if (team > ENGINE_MAX_THREADS)
        team = ENGINE_MAX_THREADS;
    if (team > 1 && atomic_exchange(&p->busy, 1) == 0) {
        int workers = engine_pool_grow(team);
        if (team > workers + 1)
            team = workers + 1;
        if (team > 1) {
            p->fn = fn;
            p->arg = arg;
            p->team = team;
            init(arg, team);
            atomic_store(&p->running, team - 1);
            unsigned seen = atomic_load(&p->finished.value);
            for (int tid = 1; tid < team; tid++)
                engine_event_signal(&p->start[tid]);
            fn(arg, 0, team);
            engine_event_wait(&p->finished, seen);
            p->team = 1;
            atomic_store(&p->busy, 0);
            return team;
        }
        atomic_store(&p->busy, 0);
    }
    init(arg, 1);
    fn(arg, 0, 1);
    return 1;
}

#endif
