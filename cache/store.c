/*
 * Opening and recovering cache roots: the root list, one SQLite connection per root, the
 * schema, the journal mode, and moving a corrupt or foreign file aside.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "kiln/kiln.h"

/* Small columns first: a record's later columns live on its overflow pages, so sums over
 * cubin_bytes and ORDER BY last_used never read the cubin or the source. */
static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY NOT NULL, value);"
    "CREATE TABLE IF NOT EXISTS kernels("
    " key BLOB PRIMARY KEY NOT NULL,"
    " cubin_bytes INTEGER NOT NULL, source_bytes INTEGER NOT NULL,"
    " cubin_xxh3 INTEGER NOT NULL,"
    " registers INTEGER NOT NULL, spills INTEGER NOT NULL, smem_bytes INTEGER NOT NULL,"
    " compile_ms REAL NOT NULL,"
    " created INTEGER NOT NULL, last_used INTEGER NOT NULL, hits INTEGER NOT NULL,"
    " key_text TEXT NOT NULL, template_name TEXT NOT NULL, arch TEXT NOT NULL,"
    " nvrtc_version TEXT NOT NULL, options TEXT NOT NULL,"
    " source TEXT NOT NULL, cubin BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS kernels_last_used ON kernels(last_used);"
    "CREATE TABLE IF NOT EXISTS quarantine(id INTEGER PRIMARY KEY, key BLOB NOT NULL,"
    " key_text TEXT, reason TEXT NOT NULL, time INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS claims(key BLOB PRIMARY KEY NOT NULL, pid INTEGER NOT NULL,"
    " host TEXT NOT NULL, time INTEGER NOT NULL);";

/* Every column the store reads or writes. A file with the right version whose tables were
 * altered or damaged fails to prepare this, and counts as another schema then, instead of
 * failing each statement on it later (a lookup that cannot quarantine a bad row). */
static const char schema_probe_sql[] =
    "SELECT name, value FROM meta LIMIT 0;"
    "SELECT key, cubin_bytes, source_bytes, cubin_xxh3, registers, spills, smem_bytes,"
    " compile_ms, created, last_used, hits, key_text, template_name, arch, nvrtc_version,"
    " options, source, cubin FROM kernels LIMIT 0;"
    "SELECT id, key, key_text, reason, time FROM quarantine LIMIT 0;"
    "SELECT key, pid, host, time FROM claims LIMIT 0;";

int64_t kc__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool kc__is_corrupt(int rc)
{
    return (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB;
}

int kc__prepare(kc__root *root, const char *sql, sqlite3_stmt **stmt)
{
    *stmt = NULL;
    return sqlite3_prepare_v2(root->db, sql, -1, stmt, NULL);
}

int kc__exec(kc__root *root, const char *sql)
{
    return sqlite3_exec(root->db, sql, NULL, NULL, NULL);
}

int kc__begin_immediate(kc__root *root)
{
    return kc__exec(root, "BEGIN IMMEDIATE");
}

int kc__end(kc__root *root, int rc)
{
    if (rc == SQLITE_OK) {
        rc = kc__exec(root, "COMMIT");
        if (rc == SQLITE_OK)
            return rc;
    }
    if (!sqlite3_get_autocommit(root->db))
        kc__exec(root, "ROLLBACK");
    return rc;
}

int kc__step_done(sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);
    int frc = sqlite3_finalize(stmt);
    return rc == SQLITE_DONE ? frc : rc;
}

/* Network file systems whose locking cannot carry WAL's shared memory. */
static bool is_network_fs(const char *dir)
{
    static const unsigned long network_magics[] = {
        0x6969,     /* NFS */
        0x517B,     /* SMB */
        0xFF534D42, /* CIFS */
        0xFE534D42, /* SMB2 */
        0x00C36400, /* CEPH */
        0x0BD00BD0, /* LUSTRE */
        0x65735546, /* FUSE: may be anything, so assume the worst */
        0x5346414F, /* AFS */
        0x01021997, /* 9P */
    };
    struct statfs fs;
    if (statfs(dir, &fs) != 0)
        return false;
    unsigned long type = (unsigned long)fs.f_type & 0xffffffffUL;
    for (size_t i = 0; i < sizeof network_magics / sizeof network_magics[0]; i++) {
        if (type == network_magics[i])
            return true;
    }
    return false;
}

/* The first column of the first row of sql as an integer; SQLITE_OK or a failure. */
static int query_int(kc__root *root, const char *sql, int64_t *value)
{
    sqlite3_stmt *stmt;
    int rc = kc__prepare(root, sql, &stmt);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW) {
            *value = sqlite3_column_int64(stmt, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_NOTFOUND;
        }
    }
    sqlite3_finalize(stmt);
    return rc;
}

void kc__sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Changing the journal mode needs an exclusive lock that SQLite will not wait for when
 * two connections could deadlock (several processes opening a new file at once), so
 * retry here for as long as the busy timeout. */
static int set_journal_mode(kc__root *root)
{
    const char *want = root->network ? "delete" : "wal";
    sqlite3_stmt *stmt = NULL;
    int rc = SQLITE_BUSY;
    for (int waited = 0; (rc & 0xff) == SQLITE_BUSY && waited < KC__BUSY_TIMEOUT_MS;
         waited += KC__POLL_MS) {
        if (waited > 0) {
            sqlite3_finalize(stmt);
            stmt = NULL;
            kc__sleep_ms(KC__POLL_MS);
        }
        rc = kc__prepare(
            root, root->network ? "PRAGMA journal_mode=DELETE" : "PRAGMA journal_mode=WAL", &stmt);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(stmt);
    }
    if (rc == SQLITE_ROW) {
        const char *got = (const char *)sqlite3_column_text(stmt, 0);
        if (got == NULL || strcmp(got, want) != 0)
            kiln__log(KILN__LOG_WARN, "cache %s: journal mode is %s, not %s", root->path,
                      got ? got : "unknown", want);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(stmt);
    if (rc == SQLITE_OK && !root->network)
        rc = kc__exec(root, "PRAGMA synchronous=NORMAL");
    return rc;
}

/* SQLITE_OK when the file holds (or, writable, now holds) schema KC_SCHEMA_VERSION;
 * KC__SCHEMA_MISMATCH for another version or a foreign database. */
static int check_schema(kc__root *root)
{
    int64_t has_meta = 0, tables = 0, version = 0;
    int rc = root->writable ? kc__begin_immediate(root) : SQLITE_OK;
    if (rc == SQLITE_OK)
        rc = query_int(root, "SELECT count(*) FROM sqlite_master WHERE name='meta'", &has_meta);
    if (rc == SQLITE_OK && has_meta) {
        rc = query_int(root, "SELECT value FROM meta WHERE name='schema_version'", &version);
        if (rc == SQLITE_OK && version != KC_SCHEMA_VERSION)
            rc = KC__SCHEMA_MISMATCH;
        else if (rc == SQLITE_NOTFOUND)
            rc = KC__SCHEMA_MISMATCH;
    } else if (rc == SQLITE_OK) {
        rc = query_int(root, "SELECT count(*) FROM sqlite_master", &tables);
        if (rc == SQLITE_OK && (tables > 0 || !root->writable))
            rc = KC__SCHEMA_MISMATCH;
    }
    if (rc == SQLITE_OK && root->writable) {
        char sql[sizeof schema_sql + 96];
        snprintf(sql, sizeof sql, "%sINSERT OR IGNORE INTO meta VALUES('schema_version', %d);",
                 schema_sql, KC_SCHEMA_VERSION);
        rc = kc__exec(root, sql);
    }
    if (rc == SQLITE_OK && (rc = kc__exec(root, schema_probe_sql)) == SQLITE_ERROR) {
        kiln__log(KILN__LOG_WARN, "cache %s: schema version %d, but its tables are not: %s",
                  root->path, KC_SCHEMA_VERSION, sqlite3_errmsg(root->db));
        rc = KC__SCHEMA_MISMATCH;
    } else if (rc == KC__SCHEMA_MISMATCH) {
        kiln__log(KILN__LOG_WARN, "cache %s: schema version %lld, expected %d", root->path,
                  (long long)version, KC_SCHEMA_VERSION);
    }
    if (root->writable)
        rc = kc__end(root, rc);
    return rc;
}

static void root_disconnect(kc__root *root)
{
    sqlite3_close_v2(root->db);
    root->db = NULL;
}

/* Opens root->db, sets it up and checks the schema; on failure root->db is NULL and
 * the sqlite3 code (or KC__SCHEMA_MISMATCH) is returned. */
static int root_connect(kc__root *root)
{
    int flags = root->writable ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
    int rc = sqlite3_open_v2(root->path, &root->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    struct stat st;
    if (rc == SQLITE_OK && stat(root->path, &st) == 0) {
        root->dev = st.st_dev;
        root->ino = st.st_ino;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(root->db, KC__BUSY_TIMEOUT_MS);
    if (rc == SQLITE_OK && root->writable)
        rc = set_journal_mode(root);
    if (rc == SQLITE_OK)
        rc = check_schema(root);
    if (rc != SQLITE_OK) {
        if (rc != KC__SCHEMA_MISMATCH)
            kiln__log(KILN__LOG_WARN, "cache %s: %s", root->path,
                      root->db ? sqlite3_errmsg(root->db) : sqlite3_errstr(rc));
        root_disconnect(root);
    }
    return rc;
}

/* Renames path (and its -wal, -shm and -journal) to "<path>.<tag>-<unix time>". Skips
 * the rename when the file there is no longer the one this root opened: another process
 * has moved it aside already and perhaps made a fresh one. */
static void move_aside(kc__root *root, const char *tag, bool check_identity)
{
    struct stat st;
    if (stat(root->path, &st) != 0)
        return;
    if (check_identity && (st.st_dev != root->dev || st.st_ino != root->ino))
        return;
    size_t len = strlen(root->path) + strlen(tag) + 64;
    char *dest = malloc(len), *from = malloc(len), *to = malloc(len);
    if (dest == NULL || from == NULL || to == NULL)
        goto done;
    long long now = (long long)time(NULL);
    snprintf(dest, len, "%s.%s-%lld", root->path, tag, now);
    for (int n = 1; access(dest, F_OK) == 0 && n < 1000; n++)
        snprintf(dest, len, "%s.%s-%lld.%d", root->path, tag, now, n);
    if (rename(root->path, dest) != 0) {
        kiln__log(KILN__LOG_WARN, "cache: cannot move %s aside: %s", root->path, strerror(errno));
        goto done;
    }
    static const char *const companions[] = {"-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(from, len, "%s%s", root->path, companions[i]);
        snprintf(to, len, "%s%s", dest, companions[i]);
        if (rename(from, to) != 0 && errno != ENOENT)
            kiln__log(KILN__LOG_WARN, "cache: cannot move %s aside: %s", from, strerror(errno));
    }
    kiln__log(KILN__LOG_WARN, "cache: %s was %s; moved it to %s and started a new one", root->path,
              strcmp(tag, "corrupt") == 0 ? "corrupt" : "of another schema", dest);
done:
    free(dest);
    free(from);
    free(to);
}

/* Connects a writable root, moving a corrupt or foreign file aside once. */
static int root_open_writable(kc__root *root, bool check_identity)
{
    int rc = root_connect(root);
    if (kc__is_corrupt(rc) || rc == KC__SCHEMA_MISMATCH) {
        move_aside(root, rc == KC__SCHEMA_MISMATCH ? "old-schema" : "corrupt", check_identity);
        rc = root_connect(root);
    }
    return rc;
}

void kc__root_failed(kc__root *root, int rc, const char *what)
{
    if (root->db == NULL)
        return;
    /* sqlite3_errstr: a ROLLBACK since the failure has reset sqlite3_errmsg. */
    kiln__log(KILN__LOG_WARN, "cache %s: %s: %s", root->path, what, sqlite3_errstr(rc));
    if (!kc__is_corrupt(rc))
        return;
    root_disconnect(root);
    if (!root->writable) {
        kiln__log(KILN__LOG_WARN, "cache %s: corrupt read-only root, skipping it", root->path);
        return;
    }
    move_aside(root, "corrupt", true);
    if (root_connect(root) != SQLITE_OK)
        kiln__log(KILN__LOG_WARN, "cache %s: cannot recreate; no writable cache", root->path);
}

/* Creates dir and its parents. */
static int make_dirs(const char *dir)
{
    char *copy = strdup(dir);
    if (copy == NULL)
        return ENOMEM;
    int result = 0;
    for (char *p = copy + 1; result == 0; p++) {
        bool end = *p == '\0';
        if (*p != '/' && !end)
            continue;
        *p = '\0';
        if (mkdir(copy, 0777) != 0 && errno != EEXIST)
            result = errno;
        if (end)
            break;
        *p = '/';
    }
    free(copy);
    return result;
}

static int root_init(kc__root *root, const char *dir, size_t dir_len, bool writable)
{
    root->writable = writable;
    root->dir = strndup(dir, dir_len);
    root->path = malloc(dir_len + sizeof "/kernels.db");
    if (root->dir == NULL || root->path == NULL)
        return KILN_ERR_OUT_OF_MEMORY;
    snprintf(root->path, dir_len + sizeof "/kernels.db", "%s/kernels.db", root->dir);
    return KILN_OK;
}

static int open_writable(kc__root *root, kiln__err *err)
{
    int e = make_dirs(root->dir);
    if (e != 0)
        return kiln__err_set(err, KILN_ERR_CACHE, "cache: cannot create %s: %s", root->dir,
                             strerror(e));
    root->network = is_network_fs(root->dir);
    int rc = root_open_writable(root, false);
    if (rc != SQLITE_OK)
        return kiln__err_set(err, KILN_ERR_CACHE, "cache: cannot open %s: %s", root->path,
                             rc == KC__SCHEMA_MISMATCH ? "schema mismatch" : sqlite3_errstr(rc));
    return KILN_OK;
}

static void open_read_only(kc__root *root)
{
    if (access(root->path, F_OK) != 0 && errno == ENOENT) {
        kiln__log(KILN__LOG_DEBUG, "cache: read-only root %s has no kernels.db", root->dir);
        return;
    }
    root->network = is_network_fs(root->dir);
    if (root_connect(root) != SQLITE_OK)
        kiln__log(KILN__LOG_WARN, "cache: cannot read %s, skipping it", root->path);
}

/* Splits "rw:ro1:ro2" into roots; an empty first element means no writable root, empty
 * later elements are ignored. */
static int parse_roots(kc_store *store, const char *path_list)
{
    size_t count = 1;
    for (const char *p = path_list; *p; p++)
        count += *p == ':';
    store->roots = calloc(count, sizeof *store->roots);
    if (store->roots == NULL)
        return KILN_ERR_OUT_OF_MEMORY;
    const char *start = path_list;
    for (size_t i = 0; i < count; i++) {
        const char *end = strchr(start, ':');
        size_t len = end ? (size_t)(end - start) : strlen(start);
        if (len > 0) {
            kc__root *root = &store->roots[store->num_roots++];
            if (root_init(root, start, len, i == 0) != KILN_OK)
                return KILN_ERR_OUT_OF_MEMORY;
            if (i == 0)
                store->rw = root;
        }
        start = end ? end + 1 : start + len;
    }
    return KILN_OK;
}

int kc_open(kc_store **out, const char *path_list, int64_t max_bytes, kiln__err *err)
{
    if (out == NULL)
        return kiln__err_set(err, KILN_ERR_INVALID_ARG, "kc_open: out is NULL");
    *out = NULL;
    if (path_list == NULL)
        return kiln__err_set(err, KILN_ERR_INVALID_ARG, "kc_open: path_list is NULL");
    if (max_bytes < 0)
        return kiln__err_set(err, KILN_ERR_INVALID_ARG, "kc_open: max_bytes %lld < 0",
                             (long long)max_bytes);
    kc_store *store = calloc(1, sizeof *store);
    if (store == NULL)
        return kiln__err_set(err, KILN_ERR_OUT_OF_MEMORY, "kc_open: out of memory");
    int status = KILN_OK;
    if (pthread_mutex_init(&store->lock, NULL) != 0) {
        free(store);
        return kiln__err_set(err, KILN_ERR_OUT_OF_MEMORY, "kc_open: cannot create a mutex");
    }
    store->max_bytes = max_bytes;
    store->pid = (int64_t)getpid();
    if (gethostname(store->host, sizeof store->host - 1) != 0)
        snprintf(store->host, sizeof store->host, "unknown");
    status = parse_roots(store, path_list);
    if (status != KILN_OK) {
        kiln__err_set(err, status, "kc_open: out of memory");
        goto fail;
    }
    if (store->rw != NULL && (status = open_writable(store->rw, err)) != KILN_OK)
        goto fail;
    for (size_t i = store->rw ? 1 : 0; i < store->num_roots; i++)
        open_read_only(&store->roots[i]);
    *out = store;
    return KILN_OK;
fail:
    kc_close(store);
    return status;
}

void kc_close(kc_store *store)
{
    if (store == NULL)
        return;
    for (size_t i = 0; i < store->num_roots; i++) {
        sqlite3_close_v2(store->roots[i].db);
        free(store->roots[i].dir);
        free(store->roots[i].path);
    }
    free(store->roots);
    free(store->ro_skip);
    pthread_mutex_destroy(&store->lock);
    free(store);
}

const char *kc_writable_path(const kc_store *store)
{
    if (store == NULL || store->rw == NULL)
        return NULL;
    return store->rw->path;
}
