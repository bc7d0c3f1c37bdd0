package inmemory

import (
	"testing"

	"github.com/berth-dev/berth/registry/storage/driver"
	"github.com/berth-dev/berth/registry/storage/driver/testsuite"
)

func TestInMemoryDriver(t *testing.T) {
	testsuite.Run(t, func(t *testing.T) driver.StorageDriver { return New() })
}
