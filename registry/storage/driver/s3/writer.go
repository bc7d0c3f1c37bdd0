package s3

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/registry/storage/driver"
)

// Writer implements driver.StorageDriver. Each flush (Commit or Close) of what was written since the
// previous one becomes a segment "KEY~OFFSET": one PutObject when it is small, a multipart upload of
// writePart parts when it is not. A Writer with append continues after the last segment, from any process.
func (d *Driver) Writer(ctx context.Context, p string, appendTo bool) (driver.FileWriter, error) {
	if err := d.check(p, false); err != nil {
		return nil, err
	}
	k := d.key(p)
	w := &writer{ctx: context.WithoutCancel(ctx), d: d, path: p, key: k}
	if !appendTo {
		if err := d.noFileAbove(ctx, p); err != nil {
			return nil, err
		}
		if err := d.truncate(ctx, k); err != nil {
			return nil, err
		}
		// The empty file exists at once (an upload's data file is created empty); the first flush replaces
		// this empty segment at offset 0.
		if err := d.put(ctx, segKey(k, 0), nil); err != nil {
			return nil, err
		}
		return w, nil
	}
	ps, err := d.pieces(ctx, p)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, d.notFound(p)
	}
	if len(ps) == 1 && ps[0].key == k { // a plain file: its object becomes the first segment
		if err := d.toSegments(ctx, k); err != nil {
			return nil, err
		}
		if ps, err = d.segments(ctx, k); err != nil {
			return nil, err
		}
	}
	var off int64
	for _, o := range ps {
		at, err := strconv.ParseInt(strings.TrimPrefix(o.key, k+segSep), 10, 64)
		if err != nil || at != off {
			return nil, fmt.Errorf("%s: %s: segment %s does not start where the previous one ends (%d)", driverName, p, o.key, off)
		}
		off += o.size
	}
	// An empty last segment (a file just created) is replaced by the next flush, at the same offset.
	w.size, w.start = off, off
	return w, nil
}

// truncate removes key's plain object and segments.
func (d *Driver) truncate(ctx context.Context, key string) error {
	segs, err := d.segments(ctx, key)
	if err != nil {
		return err
	}
	return d.deleteKeys(ctx, append(keysOf(segs), key))
}

// toSegments turns the plain object at key into segment 0, dropping stale segments first.
func (d *Driver) toSegments(ctx context.Context, key string) error {
	segs, err := d.segments(ctx, key)
	if err != nil {
		return err
	}
	if err := d.deleteKeys(ctx, keysOf(segs)); err != nil {
		return err
	}
	h, err := d.pieces(ctx, d.pathOf(key))
	if err != nil {
		return err
	}
	if err := d.concat(ctx, h, segKey(key, 0)); err != nil {
		return err
	}
	return d.deleteKeys(ctx, []string{key})
}

type writer struct {
	ctx   context.Context // of the request that opened it, for the parts uploaded by Write
	d     *Driver
	path  string
	key   string
	size  int64 // of the whole file, flushed or not
	start int64 // offset of the segment being written
	buf   []byte
	mp    *multipart // the segment's multipart upload once it outgrew one part
	err   error
	done  bool
}

func (w *writer) Size() int64 { return w.size }

func (w *writer) Write(b []byte) (int, error) {
	if w.done {
		return 0, errors.New("s3: write on a closed writer")
	}
	if w.err != nil {
		return 0, w.err
	}
	w.buf = append(w.buf, b...)
	w.size += int64(len(b))
	for len(w.buf) >= writePart {
		if w.mp == nil {
			w.mp, w.err = w.d.startMultipart(w.ctx, segKey(w.key, w.start))
			if w.err != nil {
				return len(b), w.err
			}
		}
		if w.err = w.mp.upload(w.ctx, w.buf[:writePart]); w.err != nil {
			return len(b), w.err
		}
		w.buf = append(w.buf[:0], w.buf[writePart:]...)
	}
	return len(b), nil
}

// Commit makes what was written so far a segment; the writer goes on after it.
func (w *writer) Commit(ctx context.Context) error {
	if w.err != nil {
		return w.err
	}
	if w.mp == nil && len(w.buf) == 0 {
		return nil
	}
	if w.mp == nil {
		w.err = w.d.put(ctx, segKey(w.key, w.start), w.buf)
	} else {
		if len(w.buf) > 0 {
			w.err = w.mp.upload(ctx, w.buf)
		}
		if w.err == nil {
			w.err = w.mp.complete(ctx)
		}
		w.mp = nil
	}
	if w.err != nil {
		return w.err
	}
	w.buf, w.start = w.buf[:0], w.size
	return nil
}

// Close flushes what is left.
func (w *writer) Close() error {
	if w.done {
		return nil
	}
	err := w.Commit(w.ctx)
	w.done = true
	w.buf = nil
	return err
}

// Cancel removes the file.
func (w *writer) Cancel(ctx context.Context) error {
	w.done = true
	if w.mp != nil {
		w.mp.abort()
		w.mp = nil
	}
	w.buf = nil
	return w.d.truncate(ctx, w.key)
}
