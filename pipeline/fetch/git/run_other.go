//go:build !linux

package git

import (
	"context"
	"errors"
)

// run is Linux only: elsewhere there is no way to kill what is left of
// git's process group without racing with the reuse of its id.
func (r *runner) run(context.Context, string, ...string) ([]byte, error) {
	return nil, errors.New("git sources are supported on Linux only")
}
