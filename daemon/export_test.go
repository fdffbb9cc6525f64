package daemon

// Test access to the idle logic (daemon_test cannot import its internals).

// SetIdleHook makes checkIdle call fn once it has found the daemon idle,
// before the shutdown starts; nil removes it.
func SetIdleHook(fn func()) { testHookIdle = fn }

// CheckIdle runs the idleness check now.
func (d *Daemon) CheckIdle() bool { return d.checkIdle() }
