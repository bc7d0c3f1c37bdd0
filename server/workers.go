package server

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/pipeline"
)

// WorkerService lists the live build workers (pipeline.Workers).
type WorkerService interface {
	Live(ctx context.Context) ([]pipeline.WorkerInfo, error)
}

type workerView struct {
	Region   string    `json:"region"`
	Host     string    `json:"host"`
	Version  string    `json:"version"`
	Queues   []string  `json:"queues"`
	LastSeen time.Time `json:"last_seen"`
}

func (a *api) listWorkers(c *gin.Context) {
	if a.Workers == nil {
		fail(c, errf(http.StatusServiceUnavailable, CodeUnavailable, "worker registration is not available on this instance"))
		return
	}
	ws, err := a.Workers.Live(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	out := make([]workerView, len(ws))
	for i, w := range ws {
		out[i] = workerView{Region: w.Region, Host: w.Host, Version: w.Version, Queues: w.Queues, LastSeen: w.LastSeen}
	}
	c.JSON(http.StatusOK, gin.H{"items": out, "total": len(out)})
}
