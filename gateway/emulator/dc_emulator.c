/*
 * anm-dc-emulator: an emulator of NESO's Data Concentrator file API (seed
 * 003, docs/data-concentrator.md) for tests and the demo.
 *
 *   anm-dc-emulator --cert server.pem --key server.key --user USER
 *                   --password-file FILE [--port N] [--port-file FILE]
 *                   [--control-port-file FILE] [--record FILE]
 *                   [--store-dir DIR] [--fail-next N] [--fail-status CODE]
 *
 * HTTPS (GnuTLS through libmicrohttpd) restricted to TLS 1.2 and the four
 * ECDHE/DHE-RSA AES-GCM suites, on 127.0.0.1 (port 0: ephemeral; the port
 * is written to --port-file once listening). Each request to
 * POST /ihost/deviceapi/files is checked as the real service does: Basic
 * auth (401), the exact path (404), multipart/form-data with the parts
 * "metadata" (application/json; charset=UTF-8, {"Name":...,"Process":true})
 * then "data", the file name rule and Name equal to the uploaded file's
 * name (400). A valid upload gets 201, is stored under --store-dir and
 * recorded. --fail-next N makes the next N requests fail with --fail-status
 * (default 503). A plain-HTTP control endpoint on another loopback port
 * (written to --control-port-file) takes POST /fail-next?count=N&status=S.
 *
 * Every request is recorded as one JSON line in --record:
 *   {"arrival_ms":..., "arrival":"...Z", "status":201, "name":"...",
 *    "test":false, "bytes":123, "reason":"created"}
 * Runs until SIGTERM or SIGINT.
 */
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine/cli.h"
#include "engine/clock.h"
#include "gateway/dc_csv.h"
#include "gateway/dc_upload.h"
#include "gateway/spool.h"

#define MAX_BODY (16 * 1024 * 1024)
#define PRIORITIES                                                                                 \
    "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+ECDHE-RSA:+DHE-RSA:-CIPHER-ALL:+AES-128-GCM:"          \
    "+AES-256-GCM:-MAC-ALL:+AEAD"

typedef struct emulator {
    const char *user;
    char password[512];
    const char *record_path;
    const char *store_dir;
    pthread_mutex_t lock;
    long fail_next;
    long fail_status;
} emulator;

typedef struct request {
    char *body;
    size_t length, capacity;
    int too_big;
} request;

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (n + got + 1 > cap) {
            cap = (n + got + 1) * 2;
            char *grown = realloc(buf, cap);
            if (grown == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        memcpy(buf + n, chunk, got);
        n += got;
    }
    fclose(f);
    if (buf == NULL)
        buf = calloc(1, 1);
    else
        buf[n] = '\0';
    return buf;
}

static void record(emulator *em, int status, const char *name, int test, size_t bytes,
                   const char *reason)
{
    if (em->record_path == NULL)
        return;
    int64_t now = anm_wall_clock_ms();
    char iso[32];
    anm_time_format_utc(now, iso, sizeof iso);
    json_t *line = json_pack("{s:I,s:s,s:i,s:s,s:b,s:I,s:s}", "arrival_ms", (json_int_t)now,
                             "arrival", iso, "status", status, "name", name ? name : "", "test",
                             test, "bytes", (json_int_t)bytes, "reason", reason);
    char *text = line ? json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (text != NULL) {
        pthread_mutex_lock(&em->lock);
        FILE *f = fopen(em->record_path, "a");
        if (f != NULL) {
            fprintf(f, "%s\n", text);
            fflush(f);
            fsync(fileno(f));
            fclose(f);
        }
        pthread_mutex_unlock(&em->lock);
    }
    free(text);
    json_decref(line);
}

static enum MHD_Result reply(struct MHD_Connection *connection, unsigned status, const char *text,
                             int auth_challenge)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(strlen(text), (void *)(uintptr_t)text, MHD_RESPMEM_MUST_COPY);
    if (response == NULL)
        return MHD_NO;
    MHD_add_response_header(response, "Content-Type", "text/plain");
    enum MHD_Result rc = auth_challenge
                             ? MHD_queue_basic_auth_fail_response(connection, "ihost", response)
                             : MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return rc;
}

/* ---- multipart ----------------------------------------------------------- */

typedef struct part {
    char name[64];
    char filename[256];
    int has_filename;
    char content_type[128];
    const char *data;
    size_t size;
} part;

static const char *memfind(const char *hay, size_t hay_len, const char *needle, size_t n)
{
    if (n == 0 || hay_len < n)
        return NULL;
    for (size_t i = 0; i + n <= hay_len; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, n) == 0)
            return hay + i;
    return NULL;
}

/* Copies the quoted value of key="..." from a header line into out. 1 if found. */
static int header_param(const char *line, size_t len, const char *key, char *out, size_t size)
{
    size_t k = strlen(key);
    for (size_t i = 0; i + k + 2 <= len; i++) {
        if (strncasecmp(line + i, key, k) == 0 && line[i + k] == '=' && line[i + k + 1] == '"' &&
            (i == 0 || line[i - 1] == ' ' || line[i - 1] == ';')) {
            const char *start = line + i + k + 2;
            const char *end = memchr(start, '"', len - (size_t)(start - line));
            if (end == NULL || (size_t)(end - start) >= size)
                return 0;
            memcpy(out, start, (size_t)(end - start));
            out[end - start] = '\0';
            return 1;
        }
    }
    return 0;
}

/* Splits body into at most max parts; returns the count or -1 with why set. */
static int parse_multipart(const char *body, size_t length, const char *boundary, part *parts,
                           int max, const char **why)
{
    char delim[256];
    int dn = snprintf(delim, sizeof delim, "--%s", boundary);
    if (dn < 0 || (size_t)dn >= sizeof delim) {
        *why = "boundary too long";
        return -1;
    }
    const char *p = memfind(body, length, delim, (size_t)dn);
    if (p == NULL) {
        *why = "no multipart boundary in the body";
        return -1;
    }
    const char *end = body + length;
    int count = 0;
    for (;;) {
        p += dn;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return count; /* closing delimiter */
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            *why = "malformed multipart delimiter";
            return -1;
        }
        p += 2;
        if (count == max) {
            *why = "too many multipart parts";
            return -1;
        }
        part *pt = &parts[count];
        memset(pt, 0, sizeof *pt);
        const char *headers_end = memfind(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (headers_end == NULL) {
            *why = "multipart part without a blank line after its headers";
            return -1;
        }
        int has_disposition = 0;
        for (const char *line = p; line < headers_end;) {
            const char *eol = memfind(line, (size_t)(headers_end + 2 - line), "\r\n", 2);
            size_t len = (size_t)(eol - line);
            if (len > 20 && strncasecmp(line, "Content-Disposition:", 20) == 0) {
                const char *v = line + 20;
                while (*v == ' ')
                    v++;
                if (strncasecmp(v, "form-data", 9) != 0) {
                    *why = "content-disposition must be form-data";
                    return -1;
                }
                has_disposition = 1;
                header_param(line, len, "name", pt->name, sizeof pt->name);
                pt->has_filename = header_param(line, len, "filename", pt->filename,
                                                sizeof pt->filename);
            } else if (len > 13 && strncasecmp(line, "Content-Type:", 13) == 0) {
                const char *v = line + 13;
                while (*v == ' ')
                    v++;
                size_t vl = len - (size_t)(v - line);
                if (vl >= sizeof pt->content_type)
                    vl = sizeof pt->content_type - 1;
                memcpy(pt->content_type, v, vl);
                pt->content_type[vl] = '\0';
            }
            line = eol + 2;
        }
        if (!has_disposition) {
            *why = "multipart part without content-disposition";
            return -1;
        }
        pt->data = headers_end + 4;
        char next_delim[260];
        int nn = snprintf(next_delim, sizeof next_delim, "\r\n%s", delim);
        const char *next = memfind(pt->data, (size_t)(end - pt->data), next_delim, (size_t)nn);
        if (next == NULL) {
            *why = "multipart part not terminated by the boundary";
            return -1;
        }
        pt->size = (size_t)(next - pt->data);
        count++;
        p = next + 2;
    }
}

static int is_json_utf8(const char *content_type)
{
    /* "application/json; charset=UTF-8", spacing and case as HTTP allows */
    char norm[128];
    size_t n = 0;
    for (const char *c = content_type; *c && n + 1 < sizeof norm; c++)
        if (*c != ' ')
            norm[n++] = *c;
    norm[n] = '\0';
    return strcasecmp(norm, "application/json;charset=UTF-8") == 0;
}

static int store(emulator *em, const char *name, const char *data, size_t size)
{
    if (em->store_dir == NULL)
        return 0;
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", em->store_dir, name);
    if (n < 0 || (size_t)n >= sizeof path)
        return -1;
    return gateway_write_file_atomic(path, data, size) == ANM_OK ? 0 : -1;
}

/* Validates an upload; returns the HTTP status and sets reason (and name/test on success). */
static unsigned validate(emulator *em, struct MHD_Connection *connection, request *req,
                         char *reason, size_t reason_size, char *name_out, int *test_out)
{
    const char *ct = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "Content-Type");
    if (ct == NULL || strncasecmp(ct, "multipart/form-data", 19) != 0) {
        snprintf(reason, reason_size, "content-type must be multipart/form-data");
        return 400;
    }
    const char *b = strstr(ct, "boundary=");
    if (b == NULL) {
        snprintf(reason, reason_size, "multipart/form-data without a boundary");
        return 400;
    }
    char boundary[200];
    b += 9;
    size_t bl = strcspn(b, "; ");
    if (*b == '"') {
        b++;
        bl = strcspn(b, "\"");
    }
    if (bl == 0 || bl >= sizeof boundary) {
        snprintf(reason, reason_size, "bad multipart boundary");
        return 400;
    }
    memcpy(boundary, b, bl);
    boundary[bl] = '\0';
    part parts[4];
    const char *why = NULL;
    int n = parse_multipart(req->body, req->length, boundary, parts, 4, &why);
    if (n < 0) {
        snprintf(reason, reason_size, "%s", why);
        return 400;
    }
    if (n != 2 || strcmp(parts[0].name, "metadata") != 0 || strcmp(parts[1].name, "data") != 0) {
        snprintf(reason, reason_size, "expected two parts, \"metadata\" then \"data\"");
        return 400;
    }
    if (!is_json_utf8(parts[0].content_type)) {
        snprintf(reason, reason_size,
                 "metadata part must have content-type application/json; charset=UTF-8");
        return 400;
    }
    if (parts[1].content_type[0] == '\0') {
        snprintf(reason, reason_size, "data part has no content-type");
        return 400;
    }
    json_error_t error;
    json_t *meta = json_loadb(parts[0].data, parts[0].size, 0, &error);
    json_t *jname = meta ? json_object_get(meta, "Name") : NULL;
    json_t *jprocess = meta ? json_object_get(meta, "Process") : NULL;
    unsigned status = 400;
    if (!json_is_string(jname) || !json_is_true(jprocess) || json_object_size(meta) != 2) {
        snprintf(reason, reason_size,
                 "metadata must be {\"Name\":<string>,\"Process\":true}");
        goto out;
    }
    const char *name = json_string_value(jname);
    gateway_dc_file_info info;
    anm_error_detail detail;
    anm_error_detail_clear(&detail);
    if (gateway_dc_file_name_parse(name, &info, &detail) != ANM_OK) {
        snprintf(reason, reason_size, "file name \"%.140s\": %.140s", name, detail.message);
        goto out;
    }
    if (parts[1].has_filename && strcmp(parts[1].filename, name) != 0) {
        snprintf(reason, reason_size, "metadata Name \"%.100s\" differs from the file name \"%.100s\"",
                 name, parts[1].filename);
        goto out;
    }
    if (parts[1].size == 0) {
        snprintf(reason, reason_size, "data part is empty");
        goto out;
    }
    if (store(em, name, parts[1].data, parts[1].size) != 0) {
        snprintf(reason, reason_size, "could not store the file");
        status = 500;
        goto out;
    }
    snprintf(name_out, GATEWAY_DC_NAME_MAX + 1, "%s", name);
    *test_out = info.test;
    snprintf(reason, reason_size, "created");
    status = 201;
out:
    json_decref(meta);
    return status;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    emulator *em = cls;
    request *req = *con_cls;
    if (req == NULL) {
        req = calloc(1, sizeof *req);
        if (req == NULL)
            return MHD_NO;
        *con_cls = req;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (req->length + *upload_data_size > MAX_BODY) {
            req->too_big = 1;
        } else {
            if (req->length + *upload_data_size + 1 > req->capacity) {
                size_t cap = (req->length + *upload_data_size + 1) * 2;
                char *grown = realloc(req->body, cap);
                if (grown == NULL)
                    return MHD_NO;
                req->body = grown;
                req->capacity = cap;
            }
            memcpy(req->body + req->length, upload_data, *upload_data_size);
            req->length += *upload_data_size;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    /* the whole request is here */
    pthread_mutex_lock(&em->lock);
    int inject = em->fail_next > 0;
    long fail_status = em->fail_status;
    if (inject)
        em->fail_next--;
    pthread_mutex_unlock(&em->lock);
    if (inject) {
        record(em, (int)fail_status, NULL, 0, req->length, "injected failure");
        return reply(connection, (unsigned)fail_status, "injected failure", 0);
    }
    char *password = NULL;
    char *user = MHD_basic_auth_get_username_password(connection, &password);
    int authorised = user != NULL && password != NULL && strcmp(user, em->user) == 0 &&
                     strcmp(password, em->password) == 0;
    if (user != NULL)
        MHD_free(user);
    if (password != NULL)
        MHD_free(password);
    if (!authorised) {
        record(em, 401, NULL, 0, req->length, "bad credentials");
        return reply(connection, 401, "authentication failed", 1);
    }
    if (strcmp(url, GATEWAY_DC_PATH) != 0) {
        record(em, 404, NULL, 0, req->length, "unknown path");
        return reply(connection, 404, "not found", 0);
    }
    if (strcmp(method, "POST") != 0) {
        record(em, 405, NULL, 0, req->length, "method not allowed");
        return reply(connection, 405, "method not allowed", 0);
    }
    if (req->too_big) {
        record(em, 400, NULL, 0, req->length, "body too large");
        return reply(connection, 400, "body too large", 0);
    }
    char reason[300];
    char name[GATEWAY_DC_NAME_MAX + 1] = "";
    int test = 0;
    unsigned status = req->body == NULL ? 400 : validate(em, connection, req, reason, sizeof reason, name, &test);
    if (req->body == NULL)
        snprintf(reason, sizeof reason, "empty body");
    record(em, (int)status, name, test, req->length, reason);
    return reply(connection, status, reason, 0);
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)connection;
    (void)toe;
    request *req = *con_cls;
    if (req != NULL) {
        free(req->body);
        free(req);
        *con_cls = NULL;
    }
}

static enum MHD_Result on_control(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    emulator *em = cls;
    if (*con_cls == NULL) {
        *con_cls = (void *)1;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    *con_cls = NULL;
    if (strcmp(url, "/fail-next") != 0 || strcmp(method, "POST") != 0)
        return reply(connection, 404, "not found", 0);
    const char *count = MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, "count");
    const char *status = MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, "status");
    long n = 0, s = 503;
    if (count == NULL || anm_parse_long(count, 0, 1000000, &n) != ANM_OK ||
        (status != NULL && anm_parse_long(status, 500, 599, &s) != ANM_OK))
        return reply(connection, 400, "expected count=N (and optional status=5xx)", 0);
    pthread_mutex_lock(&em->lock);
    em->fail_next = n;
    em->fail_status = s;
    pthread_mutex_unlock(&em->lock);
    return reply(connection, 200, "ok", 0);
}

static int write_port(const char *path, struct MHD_Daemon *daemon)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL)
        return -1;
    char text[16];
    int n = snprintf(text, sizeof text, "%u\n", (unsigned)info->port);
    if (path == NULL) {
        printf("%s", text);
        fflush(stdout);
        return 0;
    }
    return gateway_write_file_atomic(path, text, (size_t)n) == ANM_OK ? 0 : -1;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: anm-dc-emulator --cert FILE --key FILE --user USER --password-file FILE\n"
                 "       [--port N] [--port-file FILE] [--control-port-file FILE]\n"
                 "       [--record FILE] [--store-dir DIR] [--fail-next N] [--fail-status CODE]\n"
                 "       [--priorities GNUTLS-PRIORITY]\n"
                 "       anm-dc-emulator --help | --version\n\n"
                 "A faithful stand-in for NESO's Data Concentrator file API for tests and demos:\n"
                 "HTTPS (TLS 1.2, the seed's four cipher suites), Basic auth, POST\n"
                 "/ihost/deviceapi/files with the seed's multipart form; answers 201, 400, 401,\n"
                 "404 or an injected 5xx (--fail-next, or POST /fail-next?count=N&status=5xx on\n"
                 "the loopback control port) and records each request as a JSON line\n"
                 "(docs/data-concentrator.md).\n");
}

int main(int argc, char **argv)
{
    emulator em;
    memset(&em, 0, sizeof em);
    pthread_mutex_init(&em.lock, NULL);
    em.fail_status = 503;
    const char *cert_path = NULL, *key_path = NULL, *password_file = NULL, *port_file = NULL;
    const char *control_port_file = NULL, *priorities = PRIORITIES;
    long port = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return ANM_EXIT_OK;
        }
        if (strcmp(a, "--version") == 0)
            return anm_cli_version("anm-dc-emulator");
        if (v == NULL)
            return anm_cli_usage_error("anm-dc-emulator", "option '%s' needs a value", a);
        i++;
        if (strcmp(a, "--cert") == 0)
            cert_path = v;
        else if (strcmp(a, "--key") == 0)
            key_path = v;
        else if (strcmp(a, "--user") == 0)
            em.user = v;
        else if (strcmp(a, "--password-file") == 0)
            password_file = v;
        else if (strcmp(a, "--port-file") == 0)
            port_file = v;
        else if (strcmp(a, "--control-port-file") == 0)
            control_port_file = v;
        else if (strcmp(a, "--record") == 0)
            em.record_path = v;
        else if (strcmp(a, "--store-dir") == 0)
            em.store_dir = v;
        else if (strcmp(a, "--priorities") == 0)
            priorities = v;
        else if (strcmp(a, "--port") == 0 && anm_parse_long(v, 0, 65535, &port) == ANM_OK)
            ;
        else if (strcmp(a, "--fail-next") == 0 && anm_parse_long(v, 0, 1000000, &em.fail_next) == ANM_OK)
            ;
        else if (strcmp(a, "--fail-status") == 0 &&
                 anm_parse_long(v, 500, 599, &em.fail_status) == ANM_OK)
            ;
        else
            return anm_cli_usage_error("anm-dc-emulator", "unknown option '%s' or bad value '%s'",
                                       a, v);
    }
    if (cert_path == NULL || key_path == NULL || em.user == NULL || password_file == NULL)
        return anm_cli_usage_error("anm-dc-emulator",
                                   "--cert, --key, --user and --password-file are required");
    char *cert = read_all(cert_path), *key = read_all(key_path), *pw = read_all(password_file);
    if (cert == NULL || key == NULL || pw == NULL) {
        fprintf(stderr, "anm-dc-emulator: could not read the certificate, key or password file\n");
        return 1;
    }
    pw[strcspn(pw, "\r\n")] = '\0';
    snprintf(em.password, sizeof em.password, "%s", pw);
    free(pw);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before MHD's threads start */
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        on_request, &em, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_HTTPS_MEM_KEY,
        key, MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_HTTPS_PRIORITIES, priorities,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, &em, MHD_OPTION_END);
    if (daemon == NULL) {
        fprintf(stderr, "anm-dc-emulator: could not start the https server\n");
        return 1;
    }
    struct sockaddr_in caddr = addr;
    caddr.sin_port = 0;
    struct MHD_Daemon *control = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_control, &em,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&caddr, MHD_OPTION_END);
    if (control == NULL) {
        fprintf(stderr, "anm-dc-emulator: could not start the control server\n");
        MHD_stop_daemon(daemon);
        return 1;
    }
    if ((control_port_file != NULL && write_port(control_port_file, control) != 0) ||
        write_port(port_file, daemon) != 0) {
        fprintf(stderr, "anm-dc-emulator: could not write the port file\n");
        MHD_stop_daemon(control);
        MHD_stop_daemon(daemon);
        return 1;
    }
    int sig = 0;
    sigwait(&set, &sig);
    MHD_stop_daemon(control);
    MHD_stop_daemon(daemon);
    free(cert);
    free(key);
    explicit_bzero(em.password, sizeof em.password);
    pthread_mutex_destroy(&em.lock);
    return 0;
}
