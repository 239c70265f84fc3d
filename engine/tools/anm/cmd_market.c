/*
 * cmd_market.c: `anm market keys generate|list|add|remove`: CURVE keys of
 * anm-market. A keys directory holds NAME.secret (mode 0600: "public Z85"
 * and "secret Z85" lines), NAME.public, and authorized_keys (one
 * "participant Z85-public-key" per line) that the service's ZAP handler
 * reads. Keep the directory outside the repository.
 */
#include "commands.h"

#include "engine/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

static const char *prog = "anm market keys";

static void usage(FILE *out)
{
    fprintf(out, "usage: anm market keys generate --dir DIR NAME [--server]\n"
                 "       anm market keys list --dir DIR\n"
                 "       anm market keys add --dir DIR PARTICIPANT PUBLIC-KEY\n"
                 "       anm market keys remove --dir DIR PARTICIPANT\n\n"
                 "generate writes DIR/NAME.secret (0600) and DIR/NAME.public and, unless\n"
                 "--server, authorises NAME as a participant in DIR/authorized_keys.\n");
}

static int valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(name[i] == '-' || name[i] == '_' || name[i] == '.' ||
              (name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'z') ||
              (name[i] >= 'A' && name[i] <= 'Z')))
            return 0;
    return name[0] != '.';
}

static int valid_key(const char *key)
{
    uint8_t raw[32];
    return strlen(key) == 40 && zmq_z85_decode(raw, key) != NULL;
}

/* Rewrites authorized_keys without participant, then with (participant, key) if key. */
static int update_authorized(const char *dir, const char *participant, const char *key,
                             int *found)
{
    char path[1024], tmp[1100], line[512];
    if (snprintf(path, sizeof path, "%s/authorized_keys", dir) >= (int)sizeof path ||
        snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -1;
    *found = 0;
    FILE *in = fopen(path, "r");
    FILE *out = fopen(tmp, "w");
    if (out == NULL) {
        if (in)
            fclose(in);
        return -1;
    }
    size_t plen = strlen(participant);
    while (in != NULL && fgets(line, sizeof line, in) != NULL) {
        if (strncmp(line, participant, plen) == 0 && (line[plen] == ' ' || line[plen] == '\t')) {
            *found = 1;
            continue;
        }
        fputs(line, out);
    }
    if (in == NULL)
        fprintf(out, "# anm-market authorized keys: participant Z85-public-key\n");
    if (key != NULL)
        fprintf(out, "%s %s\n", participant, key);
    if (in)
        fclose(in);
    int bad = fflush(out) != 0 || fsync(fileno(out)) != 0;
    bad |= fclose(out) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    size_t n = strlen(text);
    int rc = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0 ? 0 : -1;
    close(fd);
    return rc;
}

static int generate(const char *dir, const char *name, int server)
{
    char public_key[41], secret_key[41], path[1024], text[256];
    if (zmq_curve_keypair(public_key, secret_key) != 0)
        return anm_cli_fail(prog, "could not generate a curve key pair: %s", zmq_strerror(errno));
    if (snprintf(path, sizeof path, "%s/%s.secret", dir, name) >= (int)sizeof path)
        return anm_cli_fail(prog, "path too long");
    snprintf(text, sizeof text, "public %s\nsecret %s\n", public_key, secret_key);
    if (write_file(path, text, 0600) != 0)
        return anm_cli_fail(prog, "could not write \"%s\": %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/%s.public", dir, name);
    snprintf(text, sizeof text, "public %s\n", public_key);
    (void)unlink(path);
    if (write_file(path, text, 0644) != 0)
        return anm_cli_fail(prog, "could not write \"%s\": %s", path, strerror(errno));
    int found;
    if (!server && update_authorized(dir, name, public_key, &found) != 0)
        return anm_cli_fail(prog, "could not update \"%s/authorized_keys\"", dir);
    printf("%s %s\n", name, public_key);
    return ANM_EXIT_OK;
}

int anm_cmd_market(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[1], "keys") != 0) {
        if (argc >= 2 && strcmp(argv[1], "--help") == 0) {
            usage(stdout);
            return ANM_EXIT_OK;
        }
        return anm_cli_usage_error("anm market", "expected 'keys generate|list|add|remove'");
    }
    const char *verb = argv[2], *dir = NULL, *args[3] = {NULL, NULL, NULL};
    int n_args = 0, server = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--server") == 0)
            server = 1;
        else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return ANM_EXIT_OK;
        } else if (argv[i][0] != '-' && n_args < 3)
            args[n_args++] = argv[i];
        else
            return anm_cli_usage_error(prog, "unexpected argument '%s'", argv[i]);
    }
    if (dir == NULL)
        return anm_cli_usage_error(prog, "--dir is required");
    if (strcmp(verb, "generate") == 0) {
        if (n_args != 1 || !valid_name(args[0]))
            return anm_cli_usage_error(prog, "generate takes one name ([A-Za-z0-9._-], < 64)");
        return generate(dir, args[0], server);
    }
    if (strcmp(verb, "list") == 0) {
        char path[1024], line[512];
        snprintf(path, sizeof path, "%s/authorized_keys", dir);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            return errno == ENOENT ? ANM_EXIT_OK
                                   : anm_cli_fail(prog, "could not read \"%s\"", path);
        while (fgets(line, sizeof line, f) != NULL)
            if (line[0] != '#' && line[0] != '\n')
                fputs(line, stdout);
        fclose(f);
        return ANM_EXIT_OK;
    }
    int found = 0;
    if (strcmp(verb, "add") == 0) {
        if (n_args != 2 || !valid_name(args[0]) || !valid_key(args[1]))
            return anm_cli_usage_error(prog, "add takes a participant and a 40-character Z85 key");
        if (update_authorized(dir, args[0], args[1], &found) != 0)
            return anm_cli_fail(prog, "could not update \"%s/authorized_keys\"", dir);
        return ANM_EXIT_OK;
    }
    if (strcmp(verb, "remove") == 0) {
        if (n_args != 1)
            return anm_cli_usage_error(prog, "remove takes a participant");
        if (update_authorized(dir, args[0], NULL, &found) != 0)
            return anm_cli_fail(prog, "could not update \"%s/authorized_keys\"", dir);
        if (!found)
            return anm_cli_fail(prog, "participant \"%s\" has no key", args[0]);
        return ANM_EXIT_OK;
    }
    return anm_cli_usage_error(prog, "unknown verb '%s'", verb);
}
