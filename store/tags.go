package store

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ImageVersion is one tag of a repository as the registry last saw it pushed (SPEC §2).
type ImageVersion struct {
	ID         string    `bson:"_id"` // namespace/repo:tag
	Repository string    `bson:"repository"`
	Tag        string    `bson:"tag"`
	Digest     string    `bson:"digest"`
	MediaType  string    `bson:"media_type"`
	ImageID    string    `bson:"image_id"`
	Size       int64     `bson:"size"`
	Platforms  []string  `bson:"platforms"`
	PushedAt   time.Time `bson:"pushed_at"`
}

func tagID(repo, tag string) string { return repo + ":" + tag }

// PutImageVersion records (or replaces) the version v.Repository:v.Tag.
func (s *Mongo) PutImageVersion(ctx context.Context, v *ImageVersion) error {
	v.ID = tagID(v.Repository, v.Tag)
	if v.Platforms == nil {
		v.Platforms = []string{}
	}
	return upsert(func() error {
		_, err := s.c(colTags).ReplaceOne(ctx, bson.M{"_id": v.ID}, v, options.Replace().SetUpsert(true))
		return err
	})
}

// GetImageVersion returns repo:tag.
func (s *Mongo) GetImageVersion(ctx context.Context, repo, tag string) (*ImageVersion, error) {
	return findOne[ImageVersion](ctx, s.c(colTags), bson.M{"_id": tagID(repo, tag)})
}

// ListImageVersions pages through a repository's versions, newest push first.
func (s *Mongo) ListImageVersions(ctx context.Context, repo string, p Page) ([]ImageVersion, int64, error) {
	return findPage[ImageVersion](ctx, s.c(colTags), bson.M{"repository": repo},
		bson.D{{Key: "pushed_at", Value: -1}, {Key: "_id", Value: 1}}, p)
}

// DeleteImageVersion forgets repo:tag.
func (s *Mongo) DeleteImageVersion(ctx context.Context, repo, tag string) error {
	res, err := s.c(colTags).DeleteOne(ctx, bson.M{"_id": tagID(repo, tag)})
	if err != nil {
		return err
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// ImageVersionsByDigest returns up to limit versions of repo that point at digest.
func (s *Mongo) ImageVersionsByDigest(ctx context.Context, repo, digest string, limit int) ([]ImageVersion, error) {
	cur, err := s.c(colTags).Find(ctx, bson.M{"repository": repo, "digest": digest}, options.Find().SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	vs := []ImageVersion{}
	err = cur.All(ctx, &vs)
	return vs, err
}

// DeleteImageVersionsByDigest forgets every tag of repo that points at digest (a manifest deleted by digest).
func (s *Mongo) DeleteImageVersionsByDigest(ctx context.Context, repo, digest string) error {
	_, err := s.c(colTags).DeleteMany(ctx, bson.M{"repository": repo, "digest": digest})
	return err
}
