// The LMDB peer of `isokv bench engine`: the same YCSB workloads on LMDB (C, memory-mapped B+tree, read
// transactions, one writer at a time), with the same keys, values and key choice as IsoKVWorkloads:
//
//   keys      "user" + the item number in at least ten decimal digits (Dataset.key), values of V bytes 'v'
//   choice    scrambled Zipfian (θ 0.99): ZipfianGenerator (Gray et al., as YCSB) + IndexPermutation, both ported
//             from Sources/IsoKVWorkloads/Zipfian.swift, on SplitMix64 (SplitMix64.swift); or uniform
//   one operation = one transaction: a read-only transaction (mdb_txn_renew … mdb_txn_reset, the reader slot kept)
//   or a write transaction (mdb_txn_begin … mdb_txn_commit)
//
//   ycsb-a 50% read / 50% update, ycsb-b 95/5, ycsb-c read only, ycsb-f 50% read / 50% read-modify-write,
//   ycsb-e 95% scans of 1–100 keys from a chosen key (cursor MDB_SET_RANGE + MDB_NEXT) / 5% inserts of new keys.
//
// The environment lives in a fresh directory (default under /dev/shm: in memory, as the engine) opened with
// MDB_NOSYNC | MDB_NOMETASYNC (no fsync, as the engine's in-memory database). Correctness is checked, not assumed:
// every read must find its key with a value of the right size, every scan must return keys in order starting at
// or after its start key, and after the run the database must hold exactly the loaded plus the inserted keys; any
// failure exits with status 1.
//
// Output: one JSON object on stdout (workload, parameters, operations, opsPerSecond, scans, keysScanned).
//
//   cc -O2 -o ycsb ycsb.c -llmdb -lpthread -lm
//   ./ycsb --workload ycsb-c --threads 2 --seconds 2 --keys 100000 --value-size 100
#define _GNU_SOURCE
#include <errno.h>
#include <lmdb.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// MARK: - Key choice (mirrors IsoKVWorkloads)

typedef struct { uint64_t state; } splitmix64;

static inline uint64_t sm_next(splitmix64 *r) {
    r->state += 0x9E3779B97F4A7C15ULL;
    uint64_t z = r->state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline double sm_unit(splitmix64 *r) { return (double)(sm_next(r) >> 11) * 0x1.0p-53; }

typedef struct {
    long count;
    double theta, zeta_n, alpha, eta, rank_one_bound;
    // IndexPermutation
    uint64_t mask, shift;
    int bits;
} chooser;

static void chooser_init(chooser *c, long count, double theta) {
    c->count = count;
    c->theta = theta;
    double z = 0;
    for (long i = 1; i <= count; i++) z += 1 / pow((double)i, theta);
    c->zeta_n = z;
    double zeta2 = 1 + 1 / pow(2, theta);
    c->alpha = 1 / (1 - theta);
    c->eta = count == 1 ? 0 : (1 - pow(2 / (double)count, 1 - theta)) / (1 - zeta2 / z);
    c->rank_one_bound = 1 + pow(0.5, theta);
    int bits = 64 - __builtin_clzll((unsigned long long)(count - 1) | 1);
    if (count - 1 == 0) bits = 1;
    if (bits < 1) bits = 1;
    c->bits = bits;
    c->mask = bits == 64 ? UINT64_MAX : ((1ULL << bits) - 1);
    c->shift = (uint64_t)((bits + 1) / 2 > 1 ? (bits + 1) / 2 : 1);
}

static inline uint64_t perm_mix(const chooser *c, uint64_t x) {
    uint64_t v = (x + 0x632BE59BD9B4E019ULL) & c->mask;
    v = (v * 0x9E3779B97F4A7C15ULL) & c->mask;
    if (c->bits > 1) v ^= v >> c->shift;
    v = (v * 0xBF58476D1CE4E5B9ULL) & c->mask;
    if (c->bits > 1) v ^= v >> c->shift;
    return v;
}

static inline long perm_apply(const chooser *c, long index) {
    uint64_t v = perm_mix(c, (uint64_t)index);
    while (v >= (uint64_t)c->count) v = perm_mix(c, v);
    return (long)v;
}

static int zipfian = 1;

static inline long choose(const chooser *c, splitmix64 *r) {
    if (!zipfian) return (long)(((__uint128_t)sm_next(r) * (uint64_t)c->count) >> 64);
    double u = sm_unit(r);
    double uz = u * c->zeta_n;
    long rank;
    if (uz < 1) rank = 0;
    else if (uz < c->rank_one_bound) rank = c->count - 1 < 1 ? c->count - 1 : 1;
    else {
        long x = (long)((double)c->count * pow(c->eta * u - c->eta + 1, c->alpha));
        rank = x < c->count - 1 ? x : c->count - 1;
    }
    return perm_apply(c, rank);
}

/// "user" + at least ten decimal digits; returns the length.
static inline size_t make_key(char *buf, long number) {
    return (size_t)sprintf(buf, "user%010ld", number);
}

// MARK: - The run

enum workload { YCSB_A, YCSB_B, YCSB_C, YCSB_E, YCSB_F };

static MDB_env *env;
static MDB_dbi dbi;
static chooser keys_chooser;
static long key_count = 100000;
static size_t value_size = 100;
static char *value;
static enum workload wl = YCSB_C;
static atomic_int phase;  // 0 warm-up, 1 measuring, 2 stop
static atomic_long next_insert;
static atomic_long inserted;

typedef struct {
    int index;
    long operations, scans, keys_scanned;
    int failed;
    char message[256];
} worker;

#define FAIL(w, ...) do { snprintf((w)->message, sizeof (w)->message, __VA_ARGS__); (w)->failed = 1; return NULL; } while (0)

static int write_txn(const char *k, size_t klen, int modify, char *scratch) {
    MDB_txn *t;
    int rc = mdb_txn_begin(env, NULL, 0, &t);
    if (rc) return rc;
    MDB_val key = {klen, (void *)k}, val = {value_size, value};
    if (modify) {
        MDB_val old;
        rc = mdb_get(t, dbi, &key, &old);
        if (rc) { mdb_txn_abort(t); return rc; }
        memcpy(scratch, old.mv_data, old.mv_size);
        if (old.mv_size > 0) scratch[0] = (char)(scratch[0] + 1);
        val.mv_size = old.mv_size;
        val.mv_data = scratch;
    }
    rc = mdb_put(t, dbi, &key, &val, 0);
    if (rc) { mdb_txn_abort(t); return rc; }
    return mdb_txn_commit(t);
}

static void *run(void *arg) {
    worker *w = arg;
    splitmix64 rng = {(uint64_t)(w->index + 1) * 0x9E3779B97F4A7C15ULL + 17};
    MDB_txn *rt;
    int rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &rt);
    if (rc) FAIL(w, "mdb_txn_begin (read): %s", mdb_strerror(rc));
    mdb_txn_reset(rt);
    MDB_cursor *cur = NULL;
    char kbuf[32], start[32];
    char *scratch = malloc(value_size + 1);
    long ops = 0, scans = 0, scanned = 0;
    int measuring = 0;
    volatile unsigned char sink = 0;
    for (;;) {
        if ((ops & 63) == 0) {
            int p = atomic_load_explicit(&phase, memory_order_relaxed);
            if (p == 2) break;
            if (p == 1 && !measuring) { measuring = 1; ops = scans = scanned = 0; }
        }
        uint64_t roll = sm_next(&rng) % 100;
        if (wl == YCSB_E) {
            if (roll < 95) {
                size_t slen = make_key(start, choose(&keys_chooser, &rng));
                long length = (long)(sm_next(&rng) % 100) + 1;
                if ((rc = mdb_txn_renew(rt))) FAIL(w, "mdb_txn_renew: %s", mdb_strerror(rc));
                if (cur == NULL) { if ((rc = mdb_cursor_open(rt, dbi, &cur))) FAIL(w, "cursor: %s", mdb_strerror(rc)); }
                else if ((rc = mdb_cursor_renew(rt, cur))) FAIL(w, "cursor renew: %s", mdb_strerror(rc));
                MDB_val k = {slen, start}, v;
                long rows = 0;
                MDB_val prev = {0, NULL};
                rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
                while (rc == 0 && rows < length) {
                    size_t n = k.mv_size < slen ? k.mv_size : slen;
                    int c = memcmp(k.mv_data, start, n);
                    if (c < 0 || (c == 0 && k.mv_size < slen)) FAIL(w, "scan returned a key before its start");
                    if (prev.mv_data && memcmp(prev.mv_data, k.mv_data, prev.mv_size < k.mv_size ? prev.mv_size : k.mv_size) > 0)
                        FAIL(w, "scan out of order");
                    sink ^= ((unsigned char *)v.mv_data)[0];
                    prev = k;
                    rows++;
                    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
                }
                if (rc != 0 && rc != MDB_NOTFOUND) FAIL(w, "cursor get: %s", mdb_strerror(rc));
                mdb_txn_reset(rt);
                scans++;
                scanned += rows;
            } else {
                long n = atomic_fetch_add(&next_insert, 1);
                size_t klen = make_key(kbuf, n);
                if ((rc = write_txn(kbuf, klen, 0, scratch))) FAIL(w, "insert: %s", mdb_strerror(rc));
                atomic_fetch_add(&inserted, 1);
            }
        } else {
            uint64_t readPercent = wl == YCSB_A ? 50 : wl == YCSB_B ? 95 : wl == YCSB_C ? 100 : 50;
            size_t klen = make_key(kbuf, choose(&keys_chooser, &rng));
            if (roll < readPercent) {
                if ((rc = mdb_txn_renew(rt))) FAIL(w, "mdb_txn_renew: %s", mdb_strerror(rc));
                MDB_val k = {klen, kbuf}, v;
                rc = mdb_get(rt, dbi, &k, &v);
                if (rc) FAIL(w, "read of %.*s: %s", (int)klen, kbuf, mdb_strerror(rc));
                if (v.mv_size != value_size) FAIL(w, "read of %.*s: %zu bytes", (int)klen, kbuf, v.mv_size);
                sink ^= ((unsigned char *)v.mv_data)[0];
                mdb_txn_reset(rt);
            } else if ((rc = write_txn(kbuf, klen, wl == YCSB_F, scratch))) {
                FAIL(w, "update: %s", mdb_strerror(rc));
            }
        }
        ops++;
    }
    (void)sink;
    if (cur) mdb_cursor_close(cur);
    mdb_txn_abort(rt);
    free(scratch);
    w->operations = ops;
    w->scans = scans;
    w->keys_scanned = scanned;
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(void) {
    fprintf(stderr,
            "usage: ycsb [--workload ycsb-a|ycsb-b|ycsb-c|ycsb-e|ycsb-f] [--threads N] [--seconds S] [--warmup S]\n"
            "            [--keys N] [--value-size V] [--distribution zipfian|uniform] [--dir PARENT]\n");
}

int main(int argc, char **argv) {
    int threads = 2;
    double seconds = 2, warmup = 0.1;
    const char *parent = "/dev/shm";
    const char *wname = "ycsb-c";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { usage(); return 2; }
        if (!strcmp(a, "--workload")) wname = v;
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--seconds")) seconds = atof(v);
        else if (!strcmp(a, "--warmup")) warmup = atof(v);
        else if (!strcmp(a, "--keys")) key_count = atol(v);
        else if (!strcmp(a, "--value-size")) value_size = (size_t)atol(v);
        else if (!strcmp(a, "--distribution")) zipfian = strcmp(v, "uniform") != 0;
        else if (!strcmp(a, "--dir")) parent = v;
        else { usage(); return 2; }
        i++;
    }
    if (!strcmp(wname, "ycsb-a")) wl = YCSB_A;
    else if (!strcmp(wname, "ycsb-b")) wl = YCSB_B;
    else if (!strcmp(wname, "ycsb-c")) wl = YCSB_C;
    else if (!strcmp(wname, "ycsb-e")) wl = YCSB_E;
    else if (!strcmp(wname, "ycsb-f")) wl = YCSB_F;
    else { fprintf(stderr, "ycsb: unknown workload '%s'\n", wname); return 2; }
    if (threads < 1 || threads > 256 || seconds <= 0 || warmup < 0 || key_count < 2 || value_size < 1 ||
        value_size > 1 << 20) {
        fprintf(stderr, "ycsb: --threads 1…256, --seconds > 0, --warmup ≥ 0, --keys ≥ 2, --value-size 1…1 MiB\n");
        return 2;
    }
    chooser_init(&keys_chooser, key_count, 0.99);
    value = malloc(value_size);
    memset(value, 'v', value_size);

    char dir[4096];
    snprintf(dir, sizeof dir, "%s/isokv-lmdb-peer-XXXXXX", parent);
    if (!mkdtemp(dir)) { fprintf(stderr, "ycsb: mkdtemp %s: %s\n", dir, strerror(errno)); return 1; }
    int rc;
    // Map size: loaded and inserted entries with generous page overhead (ycsb-e inserts 5% of its operations).
    size_t map = ((size_t)key_count * (value_size + 64) * 3 + ((size_t)1 << 30));
    if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_mapsize(env, map)) ||
        (rc = mdb_env_set_maxreaders(env, (unsigned)threads + 8)) ||
        (rc = mdb_env_open(env, dir, MDB_NOSYNC | MDB_NOMETASYNC | MDB_NOTLS, 0600))) {
        fprintf(stderr, "ycsb: opening LMDB in %s: %s\n", dir, mdb_strerror(rc));
        return 1;
    }
    // Load in key order (MDB_APPEND: "user" + fixed-width digits sort as the numbers do), 10 000 per transaction.
    char kbuf[32];
    for (long i = 0; i < key_count;) {
        MDB_txn *t;
        if ((rc = mdb_txn_begin(env, NULL, 0, &t))) { fprintf(stderr, "ycsb: load: %s\n", mdb_strerror(rc)); return 1; }
        if (i == 0 && (rc = mdb_dbi_open(t, NULL, 0, &dbi))) { fprintf(stderr, "ycsb: dbi: %s\n", mdb_strerror(rc)); return 1; }
        for (long end = i + 10000 < key_count ? i + 10000 : key_count; i < end; i++) {
            MDB_val k = {make_key(kbuf, i), kbuf}, v = {value_size, value};
            if ((rc = mdb_put(t, dbi, &k, &v, MDB_APPEND))) { fprintf(stderr, "ycsb: load put: %s\n", mdb_strerror(rc)); return 1; }
        }
        if ((rc = mdb_txn_commit(t))) { fprintf(stderr, "ycsb: load commit: %s\n", mdb_strerror(rc)); return 1; }
    }
    atomic_store(&next_insert, key_count);

    worker *ws = calloc((size_t)threads, sizeof *ws);
    pthread_t *ts = calloc((size_t)threads, sizeof *ts);
    for (int t = 0; t < threads; t++) {
        ws[t].index = t;
        if (pthread_create(&ts[t], NULL, run, &ws[t])) { fprintf(stderr, "ycsb: pthread_create failed\n"); return 1; }
    }
    usleep((useconds_t)(warmup * 1e6));
    atomic_store(&phase, 1);
    double t0 = now();
    usleep((useconds_t)(seconds * 1e6));
    atomic_store(&phase, 2);
    double elapsed = now() - t0;
    long ops = 0, scans = 0, scanned = 0;
    int failed = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(ts[t], NULL);
        if (ws[t].failed) { fprintf(stderr, "ycsb: worker %d: %s\n", t, ws[t].message); failed = 1; }
        ops += ws[t].operations;
        scans += ws[t].scans;
        scanned += ws[t].keys_scanned;
    }
    // The end state: exactly the loaded keys plus every insert.
    MDB_stat st;
    MDB_txn *t;
    if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &t)) || (rc = mdb_stat(t, dbi, &st))) {
        fprintf(stderr, "ycsb: stat: %s\n", mdb_strerror(rc));
        failed = 1;
    } else {
        long expected = key_count + atomic_load(&inserted);
        if ((long)st.ms_entries != expected) {
            fprintf(stderr, "ycsb: %zu entries after the run, expected %ld\n", st.ms_entries, expected);
            failed = 1;
        }
        mdb_txn_abort(t);
    }
    mdb_env_close(env);
    char path[4200];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
    if (failed) return 1;
    int major, minor, patch;
    mdb_version(&major, &minor, &patch);
    printf("{\"peer\": \"LMDB %d.%d.%d\", \"workload\": \"%s\", \"threads\": %d, \"seconds\": %.3f, \"keys\": %ld, "
           "\"valueSize\": %zu, \"distribution\": \"%s\", \"operations\": %ld, \"opsPerSecond\": %.1f, "
           "\"scans\": %ld, \"keysScanned\": %ld, \"keysScannedPerSecond\": %.1f}\n",
           major, minor, patch, wname, threads, elapsed, key_count, value_size, zipfian ? "zipfian" : "uniform", ops,
           (double)ops / elapsed, scans, scanned, (double)scanned / elapsed);
    return 0;
}
