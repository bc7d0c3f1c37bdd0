package store

import (
	"context"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// RepositoryListTTL bounds how stale a repository list served from memory may be when another process wrote
// the repositories (this process's own writes drop it at once).
const RepositoryListTTL = 2 * time.Second

// repoCache keeps every repository, by full name, for the stores on FerretDB. There a list filtered by
// namespace reads and decodes the whole collection, twice with its count (~0.4 s of CPU for 1,000
// repositories); from memory a page is microseconds.
type repoCache struct {
	mu     sync.Mutex
	gen    uint64 // bumped by every write to the repositories
	list   []Repository
	loaded time.Time
	valid  bool
}

func (c *repoCache) invalidate() {
	c.mu.Lock()
	c.gen++
	c.valid = false
	c.list = nil
	c.mu.Unlock()
}

// allRepositories returns every repository sorted by full name, from memory when fresh.
func (s *Mongo) allRepositories(ctx context.Context) ([]Repository, error) {
	c := &s.repos
	c.mu.Lock()
	if c.valid && time.Since(c.loaded) < RepositoryListTTL {
		list := c.list
		c.mu.Unlock()
		return list, nil
	}
	gen := c.gen
	c.mu.Unlock()
	cur, err := s.c(colRepositories).Find(ctx, bson.M{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, err
	}
	list := []Repository{}
	if err := cur.All(ctx, &list); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen == gen { // no write since the read began
		c.list, c.loaded, c.valid = list, time.Now(), true
	}
	c.mu.Unlock()
	return list, nil
}

// searchCachedRepositories is SearchRepositories over allRepositories.
func (s *Mongo) searchCachedRepositories(ctx context.Context, accountID, namespace, query string, p Page) ([]Repository, int64, error) {
	all, err := s.allRepositories(ctx)
	if err != nil {
		return nil, 0, err
	}
	var match []Repository
	for i := range all {
		r := &all[i]
		if (namespace == "" || r.Namespace == namespace) && (accountID == "" || r.AccountID == accountID) &&
			(query == "" || strings.Contains(r.Name, query)) {
			match = append(match, *r)
		}
	}
	total := int64(len(match))
	from := min(int(p.skip()), len(match))
	to := min(from+p.PageSize, len(match))
	out := make([]Repository, to-from)
	copy(out, match[from:to])
	return out, total, nil
}
