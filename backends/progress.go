package backends

import "context"

type progressKey struct{}

// WithProgress returns a context whose backend operations report how far
// they have got (0..1, increasing) by calling fn. fn runs on the backend's
// goroutine, so it should be quick.
func WithProgress(ctx context.Context, fn func(p float64)) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

// ReportProgress is how a backend tells the caller of an operation its
// progress (0..1); without WithProgress it does nothing.
func ReportProgress(ctx context.Context, p float64) {
	if fn, ok := ctx.Value(progressKey{}).(func(float64)); ok {
		fn(min(max(p, 0), 1))
	}
}
