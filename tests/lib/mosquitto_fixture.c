/* mosquitto_fixture.c: see mosquitto_fixture.h. */
#include "mosquitto_fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

#define ARG(s) ((char *)(uintptr_t)(s))

#define MOSQUITTO_BIN "/usr/sbin/mosquitto"

int anm_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
        port = ntohs(addr.sin_port);
    close(fd);
    return port;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int try_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    close(fd);
    return rc;
}

int anm_test_wait_port(int port, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    while (now_ms() < deadline) {
        if (try_connect(port) == 0)
            return 0;
        struct timespec pause = {0, 10 * 1000000L};
        nanosleep(&pause, NULL);
    }
    return -1;
}

static int spawn(anm_mosquitto_fixture *fx)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* no orphan if the test dies */
        int fd = open(fx->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(MOSQUITTO_BIN, "mosquitto", "-c", fx->conf, (char *)NULL);
        _exit(127);
    }
    fx->pid = pid;
    long long deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fx->pid = 0;
            char *log = anm_test_read_file(fx->log, NULL);
            fprintf(stderr, "mosquitto_fixture: broker exited: %s\n", log ? log : "");
            free(log);
            return -1;
        }
        if (try_connect(fx->port) == 0)
            return 0;
        struct timespec pause = {0, 10 * 1000000L};
        nanosleep(&pause, NULL);
    }
    anm_mosquitto_stop(fx);
    return -1;
}

int anm_mosquitto_start(anm_mosquitto_fixture *fx, const anm_tls_fixture *tls, const char *user,
                        const char *password)
{
    memset(fx, 0, sizeof *fx);
    fx->dir = anm_test_tmpdir("anm-mosquitto");
    if (fx->dir == NULL)
        return -1;
    snprintf(fx->conf, sizeof fx->conf, "%s/mosquitto.conf", fx->dir);
    snprintf(fx->password_file, sizeof fx->password_file, "%s/passwd", fx->dir);
    snprintf(fx->log, sizeof fx->log, "%s/mosquitto.log", fx->dir);
    if (anm_test_write_file(fx->password_file, "") != 0)
        return -1;
    char *argv[] = {ARG("mosquitto_passwd"), ARG("-b"), fx->password_file, ARG(user),
                    ARG(password), NULL};
    char *err = NULL;
    if (anm_test_run(argv, NULL, &err) != 0) {
        fprintf(stderr, "mosquitto_fixture: mosquitto_passwd failed: %s\n", err ? err : "");
        free(err);
        return -1;
    }
    free(err);
    struct passwd *pw = getpwuid(getuid());
    for (int attempt = 0; attempt < 5; attempt++) {
        fx->port = anm_test_free_port();
        char conf[4096];
        snprintf(conf, sizeof conf,
                 "per_listener_settings false\n"
                 "allow_anonymous false\n"
                 "password_file %s\n"
                 "persistence false\n"
                 "user %s\n"
                 "log_dest stderr\n"
                 "log_type error\nlog_type warning\nlog_type notice\n"
                 "listener %d 127.0.0.1\n"
                 "cafile %s\ncertfile %s\nkeyfile %s\n"
                 "tls_version tlsv1.2\n",
                 fx->password_file, pw ? pw->pw_name : "root", fx->port, tls->ca_cert,
                 tls->server_cert, tls->server_key);
        if (anm_test_write_file(fx->conf, conf) != 0)
            return -1;
        if (spawn(fx) == 0)
            return 0; /* else the port was taken meanwhile: try another */
    }
    return -1;
}

void anm_mosquitto_stop(anm_mosquitto_fixture *fx)
{
    if (fx->pid <= 0)
        return;
    kill(fx->pid, SIGTERM);
    int status;
    while (waitpid(fx->pid, &status, 0) < 0 && errno == EINTR) {
    }
    fx->pid = 0;
}

int anm_mosquitto_restart(anm_mosquitto_fixture *fx)
{
    anm_mosquitto_stop(fx);
    return spawn(fx);
}

void anm_mosquitto_free(anm_mosquitto_fixture *fx)
{
    anm_mosquitto_stop(fx);
    if (fx->dir != NULL) {
        anm_test_rmtree(fx->dir);
        free(fx->dir);
        fx->dir = NULL;
    }
}
