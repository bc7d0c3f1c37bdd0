//go:build noembed

package embedded

import (
	"context"
	"errors"
	"log/slog"
)

// Available reports whether this build carries the embedded services.
const Available = false

var errNoEmbed = errors.New("this build of Berth has no embedded services (built with -tags noembed): set --mongo-uri and --redis-addr")

type Mongo struct{ URI string }

func StartMongo(context.Context, string, *slog.Logger) (*Mongo, error) { return nil, errNoEmbed }
func (m *Mongo) Stop()                                                 {}
func (m *Mongo) IndexIDs(context.Context, string) (int, error)         { return 0, errNoEmbed }

type Redis struct{ Network, Addr, Password string }

var ErrNoRedisServer = errNoEmbed

func StartRedis() (*Redis, error)                              { return nil, errNoEmbed }
func StartRedisServer(context.Context, string) (*Redis, error) { return nil, errNoEmbed }
func (r *Redis) Stop()                                         {}
func (r *Redis) URI() string                                   { return "" }
