package pipeline

import (
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

func TestTriggerBackoff(t *testing.T) {
	base := 10 * time.Second
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 320 * time.Second, 10 * time.Minute, 10 * time.Minute}
	delay := RetryDelay(base)
	task := asynq.NewTask(TaskTriggerDeliver, nil)
	for n, w := range want {
		for range 20 {
			d := delay(n, errors.New("x"), task)
			if d < w || d > w+w/10+1 {
				t.Fatalf("retry %d: %s, want %s plus at most 10%%", n, d, w)
			}
		}
	}
	// Other task types keep Asynq's default (seconds to minutes, not our base).
	other := asynq.NewTask(TaskImagePushed, nil)
	if d := delay(0, errors.New("x"), other); d < time.Second {
		t.Fatalf("default delay for other tasks: %s", d)
	}
	if TriggerTaskID("t1", "sha256:ab", "v1") == TriggerTaskID("t1", "sha256:ab", "v2") {
		t.Fatal("task ids of two tags collide")
	}
}
