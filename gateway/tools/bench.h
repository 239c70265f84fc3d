/*
 * bench.h: `anm-gateway bench` (run by bench/gateway): IEC 104 throughput
 * and hand-over latency on loopback, then 5,000 signals at 1 Hz on every
 * route at once. A program, not a test: it prints its figures.
 */
#ifndef GATEWAY_TOOLS_BENCH_H
#define GATEWAY_TOOLS_BENCH_H

/* argv after "bench"; returns the exit code. */
int gateway_bench_main(int argc, char **argv);

#endif
