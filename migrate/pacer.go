package migrate

import (
	"context"
	"time"
)

// pacer spaces batches so that rows are read at no more than rate per
// second on average: a batch of n rows that began at t lets the next begin
// at t + n/rate at the earliest.
type pacer struct {
	rate float64   // rows per second; 0 means no limit
	next time.Time // earliest start of the next batch
}

// took records a batch of n rows that began at began.
func (p *pacer) took(began time.Time, n int) {
	if p.rate <= 0 || n == 0 {
		return
	}
	p.next = began.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
}

// wait sleeps until the next batch may begin, or ctx ends.
func (p *pacer) wait(ctx context.Context) error {
	d := time.Until(p.next)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
