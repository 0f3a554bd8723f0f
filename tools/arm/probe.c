/*
 * probe.c: a QEMU TCG plugin (plugin API v1, QEMU 7.2 as Debian 12 ships it)
 * that tells tools/count_aarch64.py what an aarch64 guest executes:
 *   - instructions per guest thread, in classes decoded from the encodings
 *     (loads/stores, SIMD&FP data processing, branches, fp32 and fp16 FMLA);
 *   - optionally, the data-cache misses of a Raspberry Pi's cache geometry
 *     (set-associative, LRU, write-allocate; a private L1D per thread, an L2
 *     private or shared, an optional shared L3);
 *   - optionally, per translated block executed inside a window: how often,
 *     its class counts and its instruction words (for attribution to shared
 *     objects and functions, and for llvm-mca).
 *
 * The guest marks a point with syscall(0x7e57, tag, window): the plugin writes
 * every thread's counters since start; window 1 opens the profile window, 2
 * closes it.  The syscall does not exist, so without the plugin the guest just
 * gets ENOSYS.
 *
 *   qemu-aarch64 -cpu cortex-a72 -plugin libprobe.so,out=F[,profile=1]
 *       [,l1d=32768:2][,l2=1048576:16:shared][,l3=SIZE:WAYS:shared][,line=64] prog...
 *
 * Counting is per translated block entered, so a block left early by a fault
 * counts whole (rare; marks and windows bracket whole inferences).  Caches are
 * indexed by virtual address (qemu-user has no other) and there is no hardware
 * prefetcher: misses are demand misses of a cache that does not prefetch.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

enum { INSNS, LDST, SIMDFP, BRANCH, FMLA_F32, FMLA_F16, L1D_ACCESS, L1D_MISS, L2_MISS, L3_MISS, NCOUNT };
static const char *count_name[NCOUNT] = {
    "insns", "ldst", "simdfp", "branch", "fmla_f32", "fmla_f16",
    "l1d_access", "l1d_miss", "l2_miss", "l3_miss"};
#define NCLASS (FMLA_F16 + 1)      /* the counts a block's encodings decide */
#define MAXVCPU 64
#define MARKER 0x7e57

typedef struct Block {
    uint64_t vaddr;
    uint32_t n;                    /* instructions */
    uint32_t cls[NCLASS];
    uint64_t window_execs;
    uint32_t *words;               /* with profile=1 */
    struct Block *next;
} Block;

typedef struct Cache {
    uint32_t sets, ways;
    uint64_t *tag;                 /* sets x ways line numbers, ~0 when empty */
    uint64_t *used;                /* last use, for LRU */
    uint64_t clock;
} Cache;

typedef struct Level {             /* a cache geometry; private ones get one Cache per thread */
    uint64_t size;
    uint32_t ways;
    int shared;
} Level;

static uint64_t counts[MAXVCPU][NCOUNT];
static Cache *l1d[MAXVCPU], *l2_private[MAXVCPU], *l2_shared, *l3_shared;
static Level geom_l1d, geom_l2, geom_l3;
static uint32_t line_shift = 6;
static int profile;
static volatile int window_open;
static FILE *out;
static Block *blocks;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;

/* Classes from the A64 top-level encoding (op0, bits 28:25) and the FMLA
 * encodings (vector and by element, single and half precision). */
static void classify(uint32_t w, uint32_t *cls)
{
    uint32_t op0 = (w >> 25) & 0xf;
    cls[INSNS]++;
    if ((op0 & 0x5) == 0x4) {
        cls[LDST]++;
    } else if ((op0 & 0x7) == 0x7) {
        cls[SIMDFP]++;
    } else if ((op0 & 0xe) == 0xa) {
        cls[BRANCH]++;
    }
    if ((w & 0xbfe0fc00u) == 0x0e20cc00u || (w & 0xbfc0f400u) == 0x0f801000u) {
        cls[FMLA_F32]++;
    } else if ((w & 0xbfe0fc00u) == 0x0e400c00u || (w & 0xbfc0f400u) == 0x0f001000u) {
        cls[FMLA_F16]++;
    }
}

static Cache *cache_new(const Level *g)
{
    Cache *c = calloc(1, sizeof(*c));
    c->ways = g->ways;
    c->sets = (uint32_t)(g->size >> line_shift) / g->ways;
    c->tag = malloc(sizeof(uint64_t) * c->sets * c->ways);
    c->used = calloc((size_t)c->sets * c->ways, sizeof(uint64_t));
    memset(c->tag, 0xff, sizeof(uint64_t) * c->sets * c->ways);
    return c;
}

/* 1 on a hit; on a miss the least recently used way takes the line. */
static int cache_touch(Cache *c, uint64_t line)
{
    uint64_t *tag = c->tag + (size_t)(line % c->sets) * c->ways;
    uint64_t *used = c->used + (size_t)(line % c->sets) * c->ways;
    uint32_t victim = 0;
    c->clock++;
    for (uint32_t i = 0; i < c->ways; i++) {
        if (tag[i] == line) {
            used[i] = c->clock;
            return 1;
        }
        if (used[i] < used[victim]) {
            victim = i;
        }
    }
    tag[victim] = line;
    used[victim] = c->clock;
    return 0;
}

static Cache *private_cache(Cache **per_vcpu, const Level *g, unsigned vcpu)
{
    if (!per_vcpu[vcpu]) {
        pthread_mutex_lock(&lock);
        if (!per_vcpu[vcpu]) {
            per_vcpu[vcpu] = cache_new(g);
        }
        pthread_mutex_unlock(&lock);
    }
    return per_vcpu[vcpu];
}

/* One line through the hierarchy: L1D, then L2, then L3 where there is one. */
static void line_access(unsigned vcpu, uint64_t line)
{
    uint64_t *cnt = counts[vcpu];
    cnt[L1D_ACCESS]++;
    if (cache_touch(private_cache(l1d, &geom_l1d, vcpu), line)) {
        return;
    }
    cnt[L1D_MISS]++;
    int hit;
    if (geom_l2.shared) {
        pthread_mutex_lock(&shared_lock);
        hit = cache_touch(l2_shared, line);
        pthread_mutex_unlock(&shared_lock);
    } else {
        hit = cache_touch(private_cache(l2_private, &geom_l2, vcpu), line);
    }
    if (hit) {
        return;
    }
    cnt[L2_MISS]++;
    if (l3_shared) {
        pthread_mutex_lock(&shared_lock);
        hit = cache_touch(l3_shared, line);
        pthread_mutex_unlock(&shared_lock);
        if (!hit) {
            cnt[L3_MISS]++;
        }
    }
}

static void on_mem(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *ud)
{
    vcpu %= MAXVCPU;
    uint64_t first = vaddr >> line_shift;
    uint64_t last = (vaddr + (1u << qemu_plugin_mem_size_shift(info)) - 1) >> line_shift;
    for (uint64_t line = first; line <= last; line++) {
        line_access(vcpu, line);
    }
}

static void on_block(unsigned int vcpu, void *ud)
{
    Block *b = ud;
    uint64_t *cnt = counts[vcpu % MAXVCPU];
    for (int k = 0; k < NCLASS; k++) {
        cnt[k] += b->cls[k];
    }
    if (window_open) {
        __atomic_add_fetch(&b->window_execs, 1, __ATOMIC_RELAXED);
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    Block *b = calloc(1, sizeof(*b));
    b->vaddr = qemu_plugin_tb_vaddr(tb);
    b->n = qemu_plugin_tb_n_insns(tb);
    if (profile) {
        b->words = calloc(b->n, sizeof(uint32_t));
    }
    for (uint32_t i = 0; i < b->n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint32_t w = 0;
        size_t size = qemu_plugin_insn_size(insn);
        memcpy(&w, qemu_plugin_insn_data(insn), size < 4 ? size : 4);
        classify(w, b->cls);
        if (b->words) {
            b->words[i] = w;
        }
        if (geom_l1d.size) {
            qemu_plugin_register_vcpu_mem_cb(insn, on_mem, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, NULL);
        }
    }
    if (profile) {
        pthread_mutex_lock(&lock);
        b->next = blocks;
        blocks = b;
        pthread_mutex_unlock(&lock);
    }
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, QEMU_PLUGIN_CB_NO_REGS, b);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t tag,
                       uint64_t window, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8)
{
    if (num != MARKER) {
        return;
    }
    pthread_mutex_lock(&lock);
    fprintf(out, "mark %" PRIu64, tag);
    for (int v = 0; v < MAXVCPU; v++) {
        if (!counts[v][INSNS]) {
            continue;
        }
        fprintf(out, " %d", v);
        for (int k = 0; k < NCOUNT; k++) {
            fprintf(out, "%c%" PRIu64, k ? ',' : ':', counts[v][k]);
        }
    }
    fputc('\n', out);
    if (window == 1) {
        window_open = 1;
    } else if (window == 2) {
        window_open = 0;
    }
    pthread_mutex_unlock(&lock);
}

static void on_exit_(qemu_plugin_id_t id, void *p)
{
    for (Block *b = blocks; b; b = b->next) {
        if (!b->window_execs) {
            continue;
        }
        fprintf(out, "block %" PRIx64 " %" PRIu64, b->vaddr, b->window_execs);
        for (int k = 0; k < NCLASS; k++) {
            fprintf(out, "%c%u", k ? ',' : ' ', b->cls[k]);
        }
        for (uint32_t i = 0; i < b->n; i++) {
            fprintf(out, "%c%08x", i ? ',' : ' ', b->words[i]);
        }
        fputc('\n', out);
    }
    fclose(out);
}

/* "SIZE:WAYS[:shared]" */
static int parse_level(const char *s, Level *g)
{
    char *end;
    g->size = strtoull(s, &end, 0);
    if (*end != ':') {
        return -1;
    }
    g->ways = strtoul(end + 1, &end, 0);
    g->shared = strcmp(end, ":shared") == 0;
    return (g->size && g->ways && (*end == 0 || g->shared)) ? 0 : -1;
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0;
        if (strncmp(a, "out=", 4) == 0) {
            path = a + 4;
        } else if (strncmp(a, "profile=", 8) == 0) {
            profile = atoi(a + 8);
        } else if (strncmp(a, "l1d=", 4) == 0) {
            bad = parse_level(a + 4, &geom_l1d);
        } else if (strncmp(a, "l2=", 3) == 0) {
            bad = parse_level(a + 3, &geom_l2);
        } else if (strncmp(a, "l3=", 3) == 0) {
            bad = parse_level(a + 3, &geom_l3);
        } else if (strncmp(a, "line=", 5) == 0) {
            line_shift = __builtin_ctz((unsigned)atoi(a + 5));
        } else {
            bad = 1;
        }
        if (bad) {
            fprintf(stderr, "probe: bad argument %s\n", a);
            return -1;
        }
    }
    if (geom_l1d.size && !geom_l2.size) {
        fprintf(stderr, "probe: l1d= needs l2=\n");
        return -1;
    }
    out = path ? fopen(path, "w") : stderr;
    if (!out) {
        perror(path);
        return -1;
    }
    fprintf(out, "counts");
    for (int k = 0; k < NCOUNT; k++) {
        fprintf(out, " %s", count_name[k]);
    }
    fputc('\n', out);
    if (geom_l2.shared) {
        l2_shared = cache_new(&geom_l2);
    }
    if (geom_l3.size) {
        l3_shared = cache_new(&geom_l3);
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_exit_, NULL);
    return 0;
}
