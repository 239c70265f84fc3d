-- 0003_ingest.sql: the ingest service's per-sender de-duplication state.
-- See docs/ingest.md.
--
-- For each journal stream and sender, the highest batch sequence number
-- committed and a 1024-bit bitmap of the sequence numbers up to it (bit
-- seq % 1024 of byte (seq % 1024) / 8). It is written in the same
-- transaction as the batch's rows and ingest_journal_position, so after a
-- crash the service knows exactly which resent batches are already stored.
CREATE TABLE ingest_senders (
    stream     text NOT NULL,
    sender_id  bigint NOT NULL CHECK (sender_id >= 0 AND sender_id <= 4294967295),
    max_seq    bigint NOT NULL CHECK (max_seq >= 0),
    seq_window bytea NOT NULL CHECK (length(seq_window) = 128),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, sender_id)
);
