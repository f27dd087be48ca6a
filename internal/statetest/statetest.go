// Package statetest leaves a state directory as a run would have left it,
// for the tests of the packages that read one (pipeline, commands). Every
// helper fails the test on an error. Tests only.
package statetest

import (
	"testing"

	"github.com/butler-sre/butler/pipeline/state"
)

// With opens the state directory dir, calls f with it and closes it.
func With(t testing.TB, dir string, f func(*state.Dir) error) {
	t.Helper()
	sd, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	if err := f(sd); err != nil {
		t.Fatal(err)
	}
}

// Save stores st in the state directory dir.
func Save(t testing.TB, dir string, st *state.State) {
	t.Helper()
	With(t, dir, func(sd *state.Dir) error { return sd.Save(st) })
}

// MarkWriting leaves in the state directory dir the mark a run killed while
// writing the files of manager leaves.
func MarkWriting(t testing.TB, dir, manager string) {
	t.Helper()
	With(t, dir, func(sd *state.Dir) error { return sd.MarkWriting(manager) })
}
