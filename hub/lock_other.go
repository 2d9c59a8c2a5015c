//go:build !unix

package hub

import "context"

// lockFile does nothing where flock is unavailable.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	return func() {}, ctx.Err()
}
