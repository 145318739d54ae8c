"""The cluster manager: a master that runs boltlink's processes, PM2-style.

    supervisor.py   the master's loop: spawn, watch, respawn, reload, scale, stop
    process.py      one worker process as the master sees it
    roles.py        which processes a cluster runs (api x N, ...)
    control.py      the Unix control socket: server in the master, client for the CLI
    runfiles.py     pidfile lock and socket path in DATA_DIR/run
    daemon.py       start-cluster without --foreground: detach, wait until ready
    master.py       run_master(): bind the port, start the supervisor, serve the control socket
    master_main.py  `boltlink __master__ CONFIG.json`: the master started without the CLI (entry.py)
    cpus.py         how many CPUs this process may really use
    logs.py         per-process log files with rotation
"""
