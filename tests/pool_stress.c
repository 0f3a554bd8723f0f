/* The thread pool (engine/kernels/pool.h) driven alone, as the executor
 * drives it: tasks of several steps, each step's jobs shared out and
 * stolen, a barrier between steps whose last thread sets up the next.
 * Every job of step s reads what step s - 1 wrote, so a missed barrier or a
 * job run twice or never shows up in the sums.  Several caller threads at
 * once, teams of 1 to 5 threads, then a fork.  tests/test_pool.py builds it
 * with ThreadSanitizer and runs it.  Exit status 0: all sums right. */
#define _GNU_SOURCE     /* as Python.h has it for the engine's modules: workers pinned to CPUs */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include "pool.h"

#define STEPS 24
#define JOBS 37

typedef struct {
    long long value[STEPS][JOBS];
    _Atomic int runs[STEPS][JOBS];
    int step, team;
    engine_share share[ENGINE_MAX_THREADS];
} Task;

static void share_step(Task* t) {
    for (int i = 0; i < t->team; i++)
        engine_share_set(&t->share[i], (long long)JOBS * i / t->team, (long long)JOBS * (i + 1) / t->team);
}

static void start(void* arg, int team) {
    Task* t = arg;
    t->team = team;
    t->step = 0;
    share_step(t);
}

static void next(void* arg) {
    Task* t = arg;
    t->step++;
    share_step(t);
}

static void run(void* arg, int tid, int team) {
    Task* t = arg;
    for (int s = 0; s < STEPS; s++) {
        for (int k = 0; k < team; k++) {
            engine_share* sh = &t->share[(tid + k) % team];
            for (long long j = engine_claim(sh); j < sh->end; j = engine_claim(sh)) {
                long long prev = s ? t->value[s - 1][(j + 1) % JOBS] + t->value[s - 1][j] : j;
                t->value[s][j] = prev + 1;
                atomic_fetch_add(&t->runs[s][j], 1);
            }
        }
        if (s + 1 < STEPS)
            engine_pool_barrier(team, next, arg);
    }
}

static int check(const Task* t) {
    long long expect[JOBS], prev[JOBS];
    for (int j = 0; j < JOBS; j++)
        expect[j] = j + 1;
    for (int s = 0; s < STEPS; s++) {
        for (int j = 0; j < JOBS; j++) {
            if (t->value[s][j] != expect[j] || t->runs[s][j] != 1)
                return 1;
            prev[j] = expect[j];
        }
        for (int j = 0; j < JOBS; j++)
            expect[j] = prev[(j + 1) % JOBS] + prev[j] + 1;
    }
    return 0;
}

static void* caller(void* arg) {
    int id = (int)(intptr_t)arg, bad = 0;
    for (int r = 0; r < 150; r++) {
        Task* t = calloc(1, sizeof(Task));
        engine_pool_run(run, start, t, 1 + (r + id) % 5);
        bad |= check(t);
        free(t);
    }
    return (void*)(intptr_t)bad;
}

int main(void) {
    pthread_t callers[3];
    int bad = 0;
    for (int i = 0; i < 3; i++)
        pthread_create(&callers[i], NULL, caller, (void*)(intptr_t)i);
    for (int i = 0; i < 3; i++) {
        void* r;
        pthread_join(callers[i], &r);
        bad |= (int)(intptr_t)r;
    }
    pid_t pid = fork();             /* the child has no workers: it must make its own */
    if (pid == 0)
        _exit((int)(intptr_t)caller((void*)0));
    int status;
    waitpid(pid, &status, 0);
    bad |= !WIFEXITED(status) || WEXITSTATUS(status);
    printf("%s\n", bad ? "wrong sums" : "ok");
    return bad;
}
