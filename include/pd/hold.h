/*
 * A test-only pause point: lets a test stop a batch at a known place, so
 * that a fault or an overload happens while work is in progress, whatever
 * the speed of the machine.
 *
 * It is off unless the environment names a directory:
 *
 *   PATTERND_HOLD_DIR=/tmp/x PATTERND_HOLD_BATCHES=3,40 patternd ingest ...
 *
 * The store calls pd_hold_batch() once per batch, inside its transaction,
 * after the write statement and before COMMIT (the batch's rows are written
 * and its locks taken, nothing is committed).  The batches are counted from
 * 1 as they first reach that point (a retried batch counts once, a batch
 * whose write never succeeds not at all); the Nth whose N is listed creates
 * the file DIR/held-N and waits until DIR/release-N exists; then it removes
 * both and goes on.  PATTERND_HOLD_BATCHES=all holds every batch.  Any
 * thread; the batch count is shared by every writer of the process.
 */
#ifndef PD_HOLD_H
#define PD_HOLD_H

/* The batch that calls this is the next of the process; holds it when the environment says so. */
void pd_hold_batch(void);

#endif
