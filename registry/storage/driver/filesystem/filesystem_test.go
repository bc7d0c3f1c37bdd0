package filesystem

import (
	"testing"

	"github.com/berth-dev/berth/registry/storage/driver"
	"github.com/berth-dev/berth/registry/storage/driver/testsuite"
)

func TestFilesystemDriver(t *testing.T) {
	testsuite.Run(t, func(t *testing.T) driver.StorageDriver {
		d, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}
