package pipeline

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

func readAll(t *testing.T, st store.Store, build string) (string, *LogCursor) {
	t.Helper()
	c := NewLogCursor(st, build)
	data, err := c.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return string(data), c
}

func TestBuildLogChunksFollowAndReopen(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	b := &store.Build{ID: store.NewBuildID(), Repository: "team/app"}

	w, err := OpenLog(ctx, st, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	follower := NewLogCursor(st, b.ID)
	var followed bytes.Buffer
	w.Printf("CLONING")
	// A line shows up for a follower within a flush interval, before the writer closes.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(followed.String(), "CLONING") {
		if time.Now().After(deadline) {
			t.Fatal("the first line was not flushed")
		}
		time.Sleep(50 * time.Millisecond)
		data, err := follower.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		followed.Write(data)
	}
	if follower.AtEnd() {
		t.Fatal("a growing log looks complete")
	}
	// More than one chunk, written in odd sizes.
	line := strings.Repeat("x", 999) + "\n"
	var want strings.Builder
	want.WriteString(followed.String())
	for range 150 {
		w.Write([]byte(line))
		want.WriteString(line)
	}
	w.Close()
	data, err := follower.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	followed.Write(data)
	if followed.String() != want.String() || !follower.AtEnd() {
		t.Fatalf("followed %d bytes (at end %v), want %d", followed.Len(), follower.AtEnd(), want.Len())
	}
	for seq := 0; seq < 3; seq++ {
		c, err := st.GetLogChunk(ctx, b.ID, seq)
		if err != nil || len(c.Data) > store.MaxLogChunk || !c.Closed {
			t.Fatalf("chunk %d: %v", seq, err)
		}
	}

	// A second attempt appends after the first one's output.
	b.Attempt = 2
	w2, err := OpenLog(ctx, st, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	w2.Printf("attempt 2")
	w2.Close()
	all, c := readAll(t, st, b.ID)
	if !strings.HasPrefix(all, want.String()) || !strings.Contains(all[want.Len():], "attempt 2") || !c.AtEnd() {
		t.Fatalf("after reopen: %d bytes, tail %q", len(all), all[max(0, len(all)-40):])
	}
}

func TestBuildLogIsCapped(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 8 MiB of log")
	}
	ctx := context.Background()
	st := storetest.New(t)
	b := &store.Build{ID: store.NewBuildID(), Repository: "team/app"}
	w, err := OpenLog(ctx, st, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	for range store.MaxLogBytes/len(chunk) + 10 {
		if n, err := w.Write(chunk); n != len(chunk) || err != nil {
			t.Fatalf("write: %d %v", n, err)
		}
	}
	w.Printf("after the cap")
	w.Close()
	all, _ := readAll(t, st, b.ID)
	if len(all) != store.MaxLogBytes || !strings.HasSuffix(all, truncatedNote) {
		t.Fatalf("log of %d bytes (cap %d), tail %q", len(all), store.MaxLogBytes, all[len(all)-100:])
	}
	// Reopening a full log keeps it full.
	b.Attempt = 2
	w, err = OpenLog(ctx, st, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Printf("attempt 2")
	w.Close()
	if again, _ := readAll(t, st, b.ID); len(again) != store.MaxLogBytes {
		t.Fatalf("grew past the cap: %d", len(again))
	}
}
