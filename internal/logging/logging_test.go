package logging

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestHCLogRoutesToSlog(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h := HCLog(l, "raft").Named("snap").With("node", "n1")
	h.Debug("hidden")
	h.Info("initial configuration", "servers", hclog.Fmt("%+v", []int{1, 2}))
	h.Info("took snapshot", "index", 42)
	h.Error("failed", "err", "disk full")
	out := buf.String()
	for _, want := range []string{
		"level=INFO msg=\"took snapshot\" component=raft.snap node=n1 index=42",
		"level=ERROR msg=failed component=raft.snap node=n1 err=\"disk full\"",
		`msg="initial configuration" component=raft.snap node=n1 servers="[1 2]"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hidden") {
		t.Errorf("debug record logged at info level:\n%s", out)
	}
	if h.IsDebug() || !h.IsInfo() || h.GetLevel() != hclog.Info {
		t.Errorf("IsDebug=%v IsInfo=%v GetLevel=%v; want false, true, info", h.IsDebug(), h.IsInfo(), h.GetLevel())
	}
	h.StandardLogger(nil).Print("from the standard logger")
	if !strings.Contains(buf.String(), "from the standard logger") {
		t.Error("StandardLogger output lost")
	}
}

func TestBadgerInfoIsDebug(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	b := Badger(l)
	b.Infof("compaction %d done", 3)
	b.Warningf("slow %s\n", "write")
	out := buf.String()
	if strings.Contains(out, "compaction") {
		t.Errorf("badger info logged at info level:\n%s", out)
	}
	if !strings.Contains(out, `level=WARN msg="slow write"`) {
		t.Errorf("badger warning lost or untrimmed:\n%s", out)
	}
}

func TestDiscard(t *testing.T) {
	if Discard(nil) == nil {
		t.Fatal("Discard(nil) = nil")
	}
	l := slog.Default()
	if Discard(l) != l {
		t.Error("Discard(l) did not return l")
	}
}
