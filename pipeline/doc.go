// Package pipeline is the story of a run: the lock, the state, each
// manager's phases (fetch, render and validate, check, write, reload,
// last-known-good) in the packages below it, notifications, the state saved
// and the metrics written.
//
// Guarantees:
//   - Managers are independent: a failure in one never stops or changes another.
//   - Remote content is fetched into memory, size-limited by butler itself and
//     conditional on the cache, and never written to a manager's directory
//     before every file of that manager fetched, rendered and validated.
//   - A file whose raw body, template context (the part of it the file can
//     use) and settings are those of the last run, and whose stat on disk is
//     the one recorded once it held its output, is known to be in step: it is
//     not rendered, validated or read again. Anything else takes the full path.
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
