//go:build noembed

package embedded

import (
	"context"
	"log/slog"
)

// Available reports whether this build carries the embedded services.
const Available = false

var errNoEmbed = ErrUnavailable

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
