// Package pipeline holds butler's configuration and the five phases of a run:
// fetch, render and validate, write, reload, and last-known-good.
//
// Guarantees:
//   - Managers are independent: a failure in one never stops or changes another.
//   - Remote content is fetched into a fresh staging directory, size-limited by
//     butler itself, and never written to a manager's directory before every
//     file of that manager fetched, rendered and validated.
//   - Each destination file is replaced atomically (temporary file in the same
//     directory, fsync, rename): a reader sees the old or the new content, never
//     a mix. When a write fails midway, the files already replaced in that run
//     are put back.
//   - State and last-known-good copies are written atomically and fsynced with
//     their directory, so they survive a crash or power loss.
//
// Nothing here formats metrics text: the run's results go to package textfile
// through its model.
package pipeline
