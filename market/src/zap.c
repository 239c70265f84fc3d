/*
 * zap.c: the CURVE key files and the ZAP handler (RFC 27) of anm-market.
 */
#define _GNU_SOURCE
#include "market/service.h"

#include "engine/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

static int valid_z85_key(const char *text)
{
    if (strlen(text) != 40)
        return 0;
    uint8_t raw[32];
    return zmq_z85_decode(raw, text) != NULL;
}

int market_keys_load(const char *dir, market_key **keys, size_t *n_keys, anm_error_detail *detail)
{
    *keys = NULL;
    *n_keys = 0;
    char path[1024];
    if (snprintf(path, sizeof path, "%s/authorized_keys", dir) >= (int)sizeof path)
        return ANM_ERANGE;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT)
            return ANM_OK;
        anm_error_detail_set(detail, path, 0, 0, NULL, "could not open: %s", strerror(errno));
        return ANM_EIO;
    }
    int rc = ANM_OK;
    char line[512];
    int line_no = 0;
    size_t capacity = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        line_no++;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\n' || *p == '\0')
            continue;
        char *space = strpbrk(p, " \t");
        if (space == NULL) {
            anm_error_detail_set(detail, path, line_no, 1, NULL,
                                 "expected \"participant public-key\"");
            rc = ANM_EPARSE;
            break;
        }
        *space = '\0';
        char *key = space + 1;
        while (*key == ' ' || *key == '\t')
            key++;
        key[strcspn(key, " \t\r\n")] = '\0';
        if (strlen(p) >= sizeof((market_key *)0)->participant || !valid_z85_key(key)) {
            anm_error_detail_set(detail, path, line_no, 1, NULL,
                                 "bad participant id or public key (40 Z85 characters)");
            rc = ANM_EPARSE;
            break;
        }
        if (*n_keys == capacity) {
            capacity = capacity ? capacity * 2 : 16;
            market_key *grown = realloc(*keys, capacity * sizeof **keys);
            if (grown == NULL) {
                rc = ANM_ENOMEM;
                break;
            }
            *keys = grown;
        }
        market_key *k = &(*keys)[(*n_keys)++];
        /* both lengths were checked above */
        memcpy(k->participant, p, strlen(p) + 1);
        memcpy(k->public_z85, key, strlen(key) + 1);
    }
    fclose(f);
    if (rc != ANM_OK) {
        free(*keys);
        *keys = NULL;
        *n_keys = 0;
    }
    return rc;
}

int market_keys_save(const char *dir, const market_key *keys, size_t n_keys)
{
    char path[1024], tmp[1040];
    if (snprintf(path, sizeof path, "%s/authorized_keys", dir) >= (int)sizeof path ||
        snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return ANM_ERANGE;
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return ANM_EIO;
    fprintf(f, "# anm-market authorized keys: participant Z85-public-key\n");
    for (size_t i = 0; i < n_keys; i++)
        fprintf(f, "%s %s\n", keys[i].participant, keys[i].public_z85);
    int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return ANM_EIO;
    }
    return ANM_OK;
}

int market_keyfile_read(const char *path, char public_z85[41], char secret_z85[41])
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return ANM_EIO;
    char line[256];
    int have_public = 0, have_secret = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, "public ", 7) == 0 && valid_z85_key(line + 7)) {
            memcpy(public_z85, line + 7, 41);
            have_public = 1;
        } else if (strncmp(line, "secret ", 7) == 0 && valid_z85_key(line + 7)) {
            if (secret_z85 != NULL)
                memcpy(secret_z85, line + 7, 41);
            have_secret = 1;
        }
    }
    fclose(f);
    return have_public && (secret_z85 == NULL || have_secret) ? ANM_OK : ANM_EPARSE;
}

int market_keyfile_write(const char *path, const char *public_z85, const char *secret_z85)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno == EEXIST ? ANM_EDUP : ANM_EIO;
    char text[128];
    int n = snprintf(text, sizeof text, "public %s\nsecret %s\n", public_z85, secret_z85);
    int rc = ANM_OK;
    if (n < 0 || (size_t)n >= sizeof text || write(fd, text, (size_t)n) != n || fsync(fd) != 0)
        rc = ANM_EIO;
    close(fd);
    return rc;
}

/* ZAP request frames after the routing id: "", version, request id, domain,
 * address, identity, mechanism, credentials... */
enum { ZAP_MAX_FRAMES = 12 };

int market_zap_handle(void *zap, const market_key *keys, size_t n_keys)
{
    int answered = 0;
    for (;;) {
        zmq_msg_t frames[ZAP_MAX_FRAMES];
        int n = 0, more = 1, rc = 0;
        while (more) {
            zmq_msg_t scratch;
            zmq_msg_t *m = n < ZAP_MAX_FRAMES ? &frames[n] : &scratch;
            zmq_msg_init(m);
            rc = zmq_msg_recv(m, zap, n ? 0 : ZMQ_DONTWAIT);
            if (rc < 0) {
                zmq_msg_close(m);
                break;
            }
            more = zmq_msg_more(m);
            if (m == &scratch)
                zmq_msg_close(m);
            else
                n++;
        }
        if (rc < 0 && n == 0)
            return errno == EAGAIN ? answered : ANM_ENET;
        const char *status = "400", *status_text = "unknown key", *user = "";
        /* [id]["" ]["1.0"][request id][domain][address][identity][mechanism][key] */
        if (n >= 9 && zmq_msg_size(&frames[7]) == 5 &&
            memcmp(zmq_msg_data(&frames[7]), "CURVE", 5) == 0 && zmq_msg_size(&frames[8]) == 32) {
            char z85[41];
            if (zmq_z85_encode(z85, zmq_msg_data(&frames[8]), 32) != NULL) {
                for (size_t k = 0; k < n_keys; k++) {
                    if (strcmp(keys[k].public_z85, z85) == 0) {
                        status = "200";
                        status_text = "OK";
                        user = keys[k].participant;
                        break;
                    }
                }
            }
            if (*user == '\0')
                anm_log_warn("market", "refused curve client key \"%s\"", z85);
        } else {
            status_text = "curve required";
        }
        if (n >= 4) {
            const char *parts[] = {"", "1.0", NULL, status, status_text, user, ""};
            zmq_msg_send(&frames[0], zap, ZMQ_SNDMORE);
            for (int i = 0; i < 7; i++) {
                int flags = i < 6 ? ZMQ_SNDMORE : 0;
                if (i == 2)
                    zmq_send(zap, zmq_msg_data(&frames[3]), zmq_msg_size(&frames[3]), flags);
                else
                    zmq_send(zap, parts[i], strlen(parts[i]), flags);
            }
            answered++;
        }
        for (int i = 0; i < n; i++)
            zmq_msg_close(&frames[i]);
    }
}
