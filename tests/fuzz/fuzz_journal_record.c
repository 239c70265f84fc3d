/*
 * fuzz_journal_record.c: the ingest journal's record reader on arbitrary
 * bytes: parse records one after another from the input as a segment would
 * hold them. Invariants: no crash or sanitizer report; an accepted record
 * lies inside the input, its length is header + payload, and its checksum
 * re-computes; a refusal says why.
 */
#include "engine/error.h"
#include "engine/telemetry_frame.h"
#include "ingest/journal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t offset = 0;
    while (offset < size) {
        const void *payload;
        size_t payload_size, record_size;
        char why[128] = "";
        int rc = ingest_journal_record_parse(data + offset, size - offset, &payload, &payload_size,
                                             &record_size, why, sizeof why);
        if (rc == ANM_EAGAIN)
            break;
        if (rc == ANM_EPROTO) {
            if (why[0] == '\0')
                abort();
            break;
        }
        if (rc != ANM_OK || record_size != payload_size + INGEST_JOURNAL_HEADER_BYTES ||
            record_size > size - offset || (const uint8_t *)payload != data + offset + 8)
            abort();
        unsigned char header[INGEST_JOURNAL_HEADER_BYTES];
        ingest_journal_record_header(payload, payload_size, header);
        if (memcmp(header, data + offset, sizeof header) != 0)
            abort();
        offset += record_size;
    }
    return 0;
}
