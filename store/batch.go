package store

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// batchTimeout bounds one group insert. It is detached from the callers' contexts: the insert serves them all.
const batchTimeout = 30 * time.Second

// maxBatch bounds the documents of one group insert.
const maxBatch = 256

// inserter groups concurrent single-document inserts into one collection: on FerretDB each insert commits its
// own transaction (on SQLite one at a time), so a burst of deliveries or builds costs one commit, not one each.
// The first caller to find no insert running becomes the leader: it inserts everything queued meanwhile with one
// unordered insertMany, one transaction, and hands each caller its own result. A duplicate _id fails only its
// own document, so the unique _id still decides between processes. MongoDB takes the same path.
type inserter struct {
	mu      sync.Mutex
	queued  []*pendingInsert
	leading bool
}

type pendingInsert struct {
	doc  bson.Raw
	err  error
	done chan struct{}
}

// insertOne inserts doc into coll; ErrAlreadyExists when its _id (or another unique key) is taken.
func (s *Mongo) insertOne(ctx context.Context, coll string, doc bson.Raw) error {
	s.insertersMu.Lock()
	in := s.inserters[coll]
	if in == nil {
		if s.inserters == nil {
			s.inserters = map[string]*inserter{}
		}
		in = &inserter{}
		s.inserters[coll] = in
	}
	s.insertersMu.Unlock()

	p := &pendingInsert{doc: doc, done: make(chan struct{})}
	in.mu.Lock()
	in.queued = append(in.queued, p)
	lead := !in.leading
	in.leading = true
	in.mu.Unlock()
	if lead {
		s.leadInserts(context.WithoutCancel(ctx), coll, in)
	}
	<-p.done
	return p.err
}

// leadInserts inserts the queued documents of in, batch after batch, until none is left.
func (s *Mongo) leadInserts(ctx context.Context, coll string, in *inserter) {
	for {
		in.mu.Lock()
		n := min(len(in.queued), maxBatch)
		if n == 0 {
			in.leading = false
			in.mu.Unlock()
			return
		}
		batch := in.queued[:n:n]
		in.queued = in.queued[n:]
		if len(in.queued) == 0 {
			in.queued = nil
		}
		in.mu.Unlock()
		s.insertBatch(ctx, coll, batch)
	}
}

func (s *Mongo) insertBatch(ctx context.Context, coll string, batch []*pendingInsert) {
	defer func() {
		for _, p := range batch {
			close(p.done)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, batchTimeout)
	defer cancel()
	if len(batch) == 1 {
		_, err := s.c(coll).InsertOne(ctx, batch[0].doc)
		batch[0].err = alreadyExists(err)
		return
	}
	docs := make([]any, len(batch))
	for i, p := range batch {
		docs[i] = p.doc
	}
	_, err := s.c(coll).InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil {
		return
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		for _, p := range batch {
			p.err = err
		}
		return
	}
	for _, we := range bwe.WriteErrors {
		if we.Index < 0 || we.Index >= len(batch) {
			continue
		}
		batch[we.Index].err = alreadyExists(we)
	}
}
