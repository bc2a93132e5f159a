package ledger

import "sync"

// broadcast wakes every waiter at once, as many times as it is notified.
// The zero value is ready to use.
type broadcast struct {
	mu sync.Mutex
	n  uint64
	ch chan struct{}
}

// wait returns the number of notifications so far and a channel closed at
// the next one.
func (b *broadcast) wait() (uint64, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.n, b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}
