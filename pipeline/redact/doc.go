// Package redact keeps credentials out of everything butler prints or stores.
//
// Guarantees:
//   - URL masks the password of URL user info and the values of secret query
//     parameters (tokens, keys, signatures, sshkey) with Mask, in go-getter
//     forms too, and leaves every other byte as it was.
//   - A Scrubber replaces every secret it was given, in any text, and masks
//     every URL password it meets, known or not.
//   - NewHandler puts a Scrubber in front of a slog handler, so no log line,
//     message or attribute, carries a known secret.
//
// There is one mask, Mask ("xxxxx"), wherever butler hides a secret.
package redact
