package raftfloor

import (
	"context"
	"testing"
	"time"
)

func TestThreeNodeFloorApplies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Start(ctx, t.TempDir(), Options{Nodes: 3, MemTableSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 20; i++ {
		if err := c.Apply([]byte("record")); err != nil {
			t.Fatal(err)
		}
	}
	if idx := c.Leader().AppliedIndex(); idx < 20 {
		t.Errorf("leader applied %d entries, want at least 20", idx)
	}
}
