// Package errtest checks the error of a call in a test: that there is
// none, or that there is one and what its text says. Tests only.
package errtest

import (
	"errors"
	"strings"
	"testing"
)

// Want fails the test now unless err is what want asks for: no error when
// want is "", else an error whose text contains want and that is (by
// errors.Is) each of the kinds that is not nil. call names what gave err,
// for the message ("CleanRel(\"a\")").
func Want(t testing.TB, call string, err error, want string, kinds ...error) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("%s = %v, want no error", call, err)
	case want != "" && err == nil:
		t.Fatalf("%s gave no error, want one containing %q", call, want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("%s: error %q does not contain %q", call, err, want)
	}
	for _, kind := range kinds {
		if err != nil && kind != nil && !errors.Is(err, kind) {
			t.Fatalf("%s: error %v is not %v", call, err, kind)
		}
	}
}
