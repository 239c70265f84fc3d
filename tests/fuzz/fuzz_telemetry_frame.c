/*
 * fuzz_telemetry_frame.c: the telemetry batch decoders (binary and JSON) on
 * arbitrary bytes. Invariants: no crash or sanitizer report; a reject has a
 * reason and leaves no samples; an accepted binary frame re-encodes to the
 * same bytes, and an accepted JSON batch re-decodes to the same samples.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "engine/telemetry_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_samples(const anm_telemetry_batch *a, const anm_telemetry_batch *b)
{
    if (a->count != b->count || a->sender_id != b->sender_id || a->seq != b->seq ||
        a->flags != b->flags)
        return 0;
    for (size_t i = 0; i < a->count; i++) {
        const anm_telemetry_sample *x = &a->samples[i], *y = &b->samples[i];
        if (x->signal_id != y->signal_id || x->utc_ms != y->utc_ms || x->quality != y->quality ||
            memcmp(&x->value, &y->value, sizeof x->value) != 0)
            return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    anm_telemetry_limits limits = {.max_samples = 1000, .max_bytes = 0};
    anm_telemetry_batch batch, again;
    anm_telemetry_reject why;
    anm_telemetry_batch_init(&batch);
    anm_telemetry_batch_init(&again);
    int rc = anm_telemetry_decode_any(data, size, &limits, &batch, &why);
    if (rc == ANM_EPROTO) {
        if (why.reason == ANM_TELEMETRY_OK || batch.count != 0 || why.text[0] == '\0')
            abort();
        goto out;
    }
    if (rc != ANM_OK)
        goto out; /* ENOMEM */
    if (size > 0 && data[0] == 'A') {
        size_t frame_size = anm_telemetry_frame_size(batch.count);
        uint8_t *frame = malloc(frame_size);
        if (frame == NULL)
            goto out;
        if (frame_size != size || anm_telemetry_encode(&batch, frame, frame_size, NULL) != ANM_OK ||
            memcmp(frame, data, size) != 0)
            abort();
        free(frame);
    } else {
        size_t length = 0;
        char *text = anm_telemetry_encode_json(&batch, &length);
        if (text == NULL)
            abort();
        /* the re-encoded text may be longer than the limit allowed the input */
        anm_telemetry_limits loose = {.max_samples = 1000, .max_bytes = length + 1};
        if (anm_telemetry_decode_json(text, length, &loose, &again, NULL) != ANM_OK ||
            !same_samples(&batch, &again))
            abort();
        free(text);
    }
out:
    anm_telemetry_batch_free(&batch);
    anm_telemetry_batch_free(&again);
    return 0;
}
