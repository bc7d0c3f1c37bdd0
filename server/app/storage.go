package app

import (
	"flag"
	"time"

	"github.com/berth-dev/berth/registry/storage/driver"
	s3driver "github.com/berth-dev/berth/registry/storage/driver/s3"
)

// S3Config puts the registry's blobs in an S3 bucket instead of DATA/registry (--s3-bucket set).
type S3Config struct {
	Endpoint  string
	Bucket    string
	Region    string
	PathStyle bool
	Redirect  bool
	AccessKey string
	SecretKey string
}

func (s *S3Config) flags(fs *flag.FlagSet) {
	fs.StringVar(&s.Endpoint, "s3-endpoint", "", "S3 endpoint URL, e.g. http://minio.internal:9000 (default: AWS)")
	fs.StringVar(&s.Bucket, "s3-bucket", "", "keep registry blobs in this S3 bucket (default: the filesystem under DATA/registry)")
	fs.StringVar(&s.Region, "s3-region", "us-east-1", "S3 region")
	fs.BoolVar(&s.PathStyle, "s3-path-style", false, "address the bucket in the URL path (most self-hosted S3 servers) instead of the host name")
	fs.BoolVar(&s.Redirect, "s3-redirect", false, "answer blob downloads with a redirect to a presigned S3 URL (clients must reach --s3-endpoint)")
	fs.StringVar(&s.AccessKey, "s3-access-key", "", "S3 access key; give it as BERTH_S3_ACCESS_KEY or in the config file, not on the command line")
	fs.StringVar(&s.SecretKey, "s3-secret-key", "", "S3 secret key; give it as BERTH_S3_SECRET_KEY or in the config file, not on the command line")
}

// sharedCacheTTL bounds how long a replica trusts its cached tag lookups and manifests: other replicas may
// write the same storage (an S3 bucket, or a filesystem they share), and a tag moved or a manifest deleted by
// another replica is seen within this time. A single node loses little: one re-read per tag every 5 s.
const sharedCacheTTL = 5 * time.Second

// storageDriver returns the S3 driver when a bucket is configured, nil for the filesystem.
func (c *Config) storageDriver() (driver.StorageDriver, error) {
	if c.S3.Bucket == "" {
		return nil, nil
	}
	return s3driver.New(s3driver.Config{Endpoint: c.S3.Endpoint, Region: c.S3.Region, Bucket: c.S3.Bucket,
		PathStyle: c.S3.PathStyle, AccessKey: c.S3.AccessKey, SecretKey: c.S3.SecretKey})
}
