// Package config reads butler.toml into plain data: every default applied and
// every rule of the configuration checked.
//
// Guarantees:
//   - Unknown keys, keys of the wrong type, bad durations, modes, formats,
//     schemes and paths are errors naming the key and, where it can be found,
//     its line; Parse reports every problem it finds, joined, each wrapping
//     ErrInvalid.
//   - ${NAME} takes an environment variable; an unset one is an error naming
//     it, and $${ stands for a literal ${.
//   - A file's path is relative, clean and free of "..", so it cannot leave
//     its manager's dest by name; the write phase refuses symlinks on disk.
//   - A dir's path follows the same rules and overlaps no file's or other
//     dir's path of its manager, so each path under dest has one source; a
//     dir's source can list a directory (never http(s)), and Dir.File keeps
//     every listed file inside the dir's path.
//   - A [verify] table holds parsed keys: a key that minisign could not
//     verify with is a configuration error, found by `butler check`.
//   - The package knows nothing of the state, health or notifications: they
//     read the configuration, never the reverse.
package config
