package embedded

import "errors"

// ErrUnavailable is the answer of a build without the embedded services (-tags noembed) to a start that needs
// them.
var ErrUnavailable = errors.New("this build of Berth has no embedded services (built with -tags noembed): set --mongo-uri and --redis-addr")
