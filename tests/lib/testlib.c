/* testlib.c: shared test helpers (no Criterion dependency in the logic). */
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *anm_test_source_dir(void)
{
    const char *dir = getenv("ANM_SOURCE_DIR");
    return dir ? dir : ".";
}

const char *anm_test_bin_dir(void)
{
    const char *dir = getenv("ANM_BIN_DIR");
    return dir ? dir : "build/bin";
}

char *anm_test_source_path(char *buf, size_t size, const char *relative)
{
    int n = snprintf(buf, size, "%s/%s", anm_test_source_dir(), relative);
    if (n < 0 || (size_t)n >= size)
        buf[0] = '\0';
    return buf;
}

char *anm_test_tmpdir(const char *prefix)
{
    const char *base = getenv("TMPDIR");
    char template_path[512];
    int n = snprintf(template_path, sizeof template_path, "%s/%s-XXXXXX", base ? base : "/tmp",
                     prefix ? prefix : "anm-test");
    if (n < 0 || (size_t)n >= sizeof template_path)
        return NULL;
    if (mkdtemp(template_path) == NULL)
        return NULL;
    return strdup(template_path);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void anm_test_rmtree(const char *path)
{
    if (path != NULL)
        nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

typedef struct capture {
    char *data;
    size_t length, capacity;
} capture;

static void capture_append(capture *c, const char *data, size_t n)
{
    if (c->length + n + 1 > c->capacity) {
        size_t capacity = c->capacity ? c->capacity * 2 : 4096;
        while (capacity < c->length + n + 1)
            capacity *= 2;
        char *grown = realloc(c->data, capacity);
        if (grown == NULL)
            return;
        c->data = grown;
        c->capacity = capacity;
    }
    memcpy(c->data + c->length, data, n);
    c->length += n;
    c->data[c->length] = '\0';
}

int anm_test_run(char *const argv[], char **out, char **err)
{
    int out_pipe[2], err_pipe[2];
    if (pipe(out_pipe) != 0)
        return -1;
    if (pipe(err_pipe) != 0) {
        close(out_pipe[0]);
        close(out_pipe[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(out_pipe[1], 1);
        dup2(err_pipe[1], 2);
        close(out_pipe[0]);
        close(err_pipe[0]);
        close(out_pipe[1]);
        close(err_pipe[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    capture captured[2] = {{0}, {0}};
    struct pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    int open_count = 2;
    while (open_count > 0) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[4096];
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                capture_append(&captured[i], buf, (size_t)n);
            } else {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_count--;
            }
        }
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    for (int i = 0; i < 2; i++) {
        if (captured[i].data == NULL)
            captured[i].data = strdup("");
    }
    if (out)
        *out = captured[0].data;
    else
        free(captured[0].data);
    if (err)
        *err = captured[1].data;
    else
        free(captured[1].data);
    if (!WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

char *anm_test_read_file(const char *path, size_t *length)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    capture c = {0};
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        capture_append(&c, buf, n);
    fclose(f);
    if (c.data == NULL)
        c.data = strdup("");
    if (length)
        *length = c.length;
    return c.data;
}

int anm_test_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    size_t n = strlen(text);
    int rc = fwrite(text, 1, n, f) == n ? 0 : -1;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

char **anm_test_argv_dup(const char *const argv[])
{
    size_t n = 0;
    while (argv[n] != NULL)
        n++;
    char **copy = calloc(n + 1, sizeof *copy);
    if (copy == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        copy[i] = strdup(argv[i]);
        if (copy[i] == NULL) {
            anm_test_argv_free(copy);
            return NULL;
        }
    }
    return copy;
}

void anm_test_argv_free(char **argv)
{
    if (argv == NULL)
        return;
    for (size_t i = 0; argv[i] != NULL; i++)
        free(argv[i]);
    free(argv);
}

int anm_test_run_args(const char *const argv[], char **out, char **err)
{
    char **copy = anm_test_argv_dup(argv);
    if (copy == NULL)
        return -1;
    int status = anm_test_run(copy, out, err);
    anm_test_argv_free(copy);
    return status;
}

void anm_test_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

char *anm_test_wait_for_file(const char *path, pid_t pid, long timeout_ms, int *exited)
{
    *exited = 0;
    for (long waited = 0; waited <= timeout_ms; waited += 5) {
        char *text = anm_test_read_file(path, NULL);
        if (text != NULL)
            return text;
        int status;
        if (pid > 0 && waitpid(pid, &status, WNOHANG) == pid) {
            *exited = 1;
            return NULL;
        }
        anm_test_sleep_ms(5);
    }
    return NULL;
}
