/*
 * fuzz_iec104.c: the IEC 104 reassembler, APDU and ASDU decoders and the
 * link state machine on hostile input.
 *
 * Input layout: octet 0 picks the role (bit 0), the chunk size for feeding
 * (bits 1..4) and whether to answer received ASDUs (bit 5); the rest is the
 * TCP stream from the peer. The same bytes are also decoded directly as an
 * ASDU. Checked invariants (abort on violation): whatever decodes
 * re-encodes and decodes to the same values; everything the link emits is a
 * stream of well-formed APDUs; the link's counters stay consistent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/iec104.h"
#include "gateway/iec104_link.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int condition)
{
    if (!condition)
        abort();
}

static void round_trip_asdu(const uint8_t *bytes, size_t size)
{
    static gateway_iec104_asdu asdu, again;
    if (gateway_iec104_asdu_decode(bytes, size, &asdu, NULL) != ANM_OK)
        return;
    static uint8_t out[GATEWAY_IEC104_MAX_ASDU];
    size_t written = 0;
    int rc = gateway_iec104_asdu_encode(&asdu, out, sizeof out, &written);
    /* a decoded ASDU may exceed 249 octets only if given more than 249 */
    if (rc == ANM_ERANGE) {
        check(size > GATEWAY_IEC104_MAX_ASDU);
        return;
    }
    check(rc == ANM_OK);
    check(written == size);
    check(gateway_iec104_asdu_decode(out, written, &again, NULL) == ANM_OK);
    check(again.type == asdu.type && again.count == asdu.count && again.cause == asdu.cause &&
          again.common_address == asdu.common_address);
    for (unsigned i = 0; i < asdu.count; i++) {
        check(again.objects[i].ioa == asdu.objects[i].ioa);
        check(again.objects[i].quality == asdu.objects[i].quality);
        check(memcmp(&again.objects[i].time, &asdu.objects[i].time, sizeof asdu.objects[i].time) == 0);
        check(memcmp(&again.objects[i].value, &asdu.objects[i].value, sizeof(float)) == 0);
    }
}

/* Everything the link writes must reassemble and decode cleanly. */
static void check_output(gateway_iec104_link *link)
{
    size_t size = 0;
    const uint8_t *out = gateway_iec104_link_output(link, &size);
    gateway_iec104_reassembler r;
    gateway_iec104_reassembler_init(&r);
    size_t offset = 0;
    while (offset < size) {
        size_t used = 0, frame_size = 0;
        const uint8_t *frame = NULL;
        int rc = gateway_iec104_reassembler_push(&r, out + offset, size - offset, &used, &frame,
                                                 &frame_size, NULL);
        check(rc >= 0);
        offset += used;
        if (rc == 1) {
            gateway_iec104_apdu apdu;
            check(gateway_iec104_apdu_decode(frame, frame_size, &apdu, NULL) == ANM_OK);
        }
    }
    gateway_iec104_link_output_consume(link, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    const uint8_t *stream = data + 1;
    size_t stream_size = size - 1;

    round_trip_asdu(stream, stream_size);
    gateway_iec104_apdu apdu;
    if (gateway_iec104_apdu_decode(stream, stream_size, &apdu, NULL) == ANM_OK &&
        apdu.format == GATEWAY_IEC104_FRAME_I)
        round_trip_asdu(apdu.asdu, apdu.asdu_size);

    gateway_iec104_link_config config;
    gateway_iec104_link_config_default(&config, (mode & 1) ? GATEWAY_IEC104_CONTROLLING
                                                           : GATEWAY_IEC104_CONTROLLED);
    config.max_queue_bytes = 64 * 1024;
    gateway_iec104_link *link = NULL;
    if (gateway_iec104_link_new(&config, 0, &link, NULL) != ANM_OK)
        return 0;
    if (mode & 1)
        (void)gateway_iec104_link_start(link, 0);
    size_t chunk = 1 + ((mode >> 1) & 0x0F) * 7;
    int answer = (mode >> 5) & 1;
    int64_t now = 0;
    size_t offset = 0;
    while (offset < stream_size && gateway_iec104_link_get_state(link) != GATEWAY_IEC104_LINK_CLOSED) {
        size_t n = stream_size - offset < chunk ? stream_size - offset : chunk;
        size_t used = 0;
        check(gateway_iec104_link_feed(link, stream + offset, n, now, &used) == ANM_OK);
        check(used <= n);
        offset += used;
        gateway_iec104_event event;
        while (gateway_iec104_link_next_event(link, &event)) {
            if (event.kind == GATEWAY_IEC104_EVENT_ASDU) {
                check(event.asdu_size >= 1 && event.asdu_size <= GATEWAY_IEC104_MAX_ASDU);
                round_trip_asdu(event.asdu, event.asdu_size);
                if (answer)
                    (void)gateway_iec104_link_submit(link, event.asdu, event.asdu_size, now);
            }
        }
        check(gateway_iec104_link_unacked_count(link) <= gateway_iec104_link_pending_count(link));
        check(gateway_iec104_link_unacked_count(link) <= (size_t)config.k);
        check_output(link);
        now += 1000 * (int64_t)(n % 7);
        int64_t next = gateway_iec104_link_tick(link, now);
        check(next > now);
        check_output(link);
    }
    gateway_iec104_link_destroy(&link);
    return 0;
}
