/* client.h: `anm-gateway client`, a small IEC 104 client for demos and checks. */
#ifndef GATEWAY_TOOLS_CLIENT_H
#define GATEWAY_TOOLS_CLIENT_H

/* argv after "client". Returns a process exit code. */
int gateway_client_main(int argc, char **argv);

#endif
