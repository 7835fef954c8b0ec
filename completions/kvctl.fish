# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_kvctl_global_optspecs
    string join \n home= h/help V/version
end

function __fish_kvctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_kvctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_kvctl_using_subcommand
    set -l cmd (__fish_kvctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c kvctl -n "__fish_kvctl_needs_command" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_needs_command" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_needs_command" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_needs_command" -f -a "node" -d 'Run a node (its directory is --home: data/, certs/ with ca.pem, node.pem, node.key)'
complete -c kvctl -n "__fish_kvctl_needs_command" -f -a "cluster" -d 'Start, stop and inspect a local multi-node cluster'
complete -c kvctl -n "__fish_kvctl_needs_command" -f -a "status" -d 'Each node\'s state as the cluster sees it'
complete -c kvctl -n "__fish_kvctl_needs_command" -f -a "ring" -d 'Tokens and ownership per node; with --key, a key\'s token and preference list'
complete -c kvctl -n "__fish_kvctl_needs_command" -f -a "get" -d 'Read a key: every sibling value and the causal context'
complete -c kvctl -n "__fish_kvctl_needs_command" -f -a "put" -d 'Write a key'
complete -c kvctl -n "__fish_kvctl_needs_command" -f -a "delete" -d 'Delete a key (writes a versioned tombstone)'
complete -c kvctl -n "__fish_kvctl_needs_command" -f -a "shell" -d 'An interactive shell (REPL): get, put, delete, ring, status, CONSISTENCY, OUTPUT, help. With standard input not a terminal, runs its lines as a script'
complete -c kvctl -n "__fish_kvctl_needs_command" -f -a "repair" -d 'Compare every token range\'s replicas (Merkle trees) and merge what differs into each'
complete -c kvctl -n "__fish_kvctl_needs_command" -f -a "workers" -d 'Each node\'s background workers (state, progress, errors) and its engine\'s figures'
complete -c kvctl -n "__fish_kvctl_needs_command" -f -a "layout" -d 'The cluster layout: its version, the versions live during a change, and each node\'s address, datacenter, rack, tokens and state'
complete -c kvctl -n "__fish_kvctl_needs_command" -f -a "bench" -d 'Run a YCSB-style workload against the cluster and report throughput and latency'
complete -c kvctl -n "__fish_kvctl_needs_command" -f -a "cert" -d 'Create a cluster CA and node or client certificates for clusters on several machines'
complete -c kvctl -n "__fish_kvctl_needs_command" -f -a "completions" -d 'Print shell completions for bash, zsh or fish'
complete -c kvctl -n "__fish_kvctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and not __fish_seen_subcommand_from start help" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and not __fish_seen_subcommand_from start help" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and not __fish_seen_subcommand_from start help" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and not __fish_seen_subcommand_from start help" -f -a "start" -d 'Start a node in the foreground (SIGINT or SIGTERM stops it cleanly)'
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and not __fish_seen_subcommand_from start help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l listen -d 'Address to listen on (UDP, QUIC), also the address other nodes use' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l seeds -d 'Nodes to join through, comma-separated' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l node-id -d 'The node\'s id. A node\'s id is the one its certificate (certs/node.pem) was made for; if given, this must be it' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l vnodes -d 'Virtual nodes (tokens) to take on first start' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l replication -d 'Replicas per key (N)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l threads -d 'Threads serving requests (default: one per core)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l sync-rate-max -d 'Most WAL fsyncs a second the node\'s writer makes, on average: under load, writes wait a little and share an fsync. For disks that stall when flushed too often; 0: no limit' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l connections-max -d 'Most connections the node holds; more are closed with the reason. Clients may hold all but 32 of them (at most half), kept for other nodes' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l handshakes-max -d 'Most TLS handshakes the node runs at once; more new connections are refused until one ends (a connection counts toward --connections-max once its handshake is done)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l connections-per-peer-max -d 'Most connections one peer (a remote UDP address: one client process or node) holds' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l request-bytes-in-flight-max -d 'Most bytes the node holds for requests in flight (requests, the versions they read, replies not yet taken); past it requests are refused as unavailable. E.g. 512MiB' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l connection-bytes-in-flight-max -d 'Most bytes one connection\'s requests hold (its share of the above); a get at ALL of a 16 MiB value needs about 100MiB' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l write-queue-bytes-max -d 'Most bytes of writes waiting for the node\'s writer; more wait for room' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l max-hint-window -d 'How long hints are kept for a node that is down (e.g. 10s, 30m, 3h): no hints are made for a node down longer, and older hints are dropped (that node needs a repair)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l hints-bytes-per-target-max -d 'Most bytes of hints the node holds for one other node; a write that needs one more is refused' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l hint-replay-rate -d 'Bytes a second of hints replayed to one node come back' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l phi-convict-threshold -d 'The failure detector\'s suspicion level at which a node is shown down (phi accrual; higher is slower to convict, lower is quicker but more often wrong)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l aae-interval -d 'How often the node repairs, in the background, the ranges it is the first replica of (Merkle anti-entropy, as `kvctl repair` does); 0s turns it off' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l tombstone-grace -d 'How long a delete\'s tombstone is kept at least (humantime, e.g. 10days, 1h, 5s); it is removed only after that and after a repair covering its range completed' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l metrics-listen -d 'Serve Prometheus metrics at http://ADDR/metrics (port 0: any free port; `status` shows the address)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from start" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from help" -f -a "start" -d 'Start a node in the foreground (SIGINT or SIGTERM stops it cleanly)'
complete -c kvctl -n "__fish_kvctl_using_subcommand node; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and not __fish_seen_subcommand_from up down status help" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and not __fish_seen_subcommand_from up down status help" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and not __fish_seen_subcommand_from up down status help" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and not __fish_seen_subcommand_from up down status help" -f -a "up" -d 'Create (or restart) a local cluster on loopback and wait until every node sees the ring'
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and not __fish_seen_subcommand_from up down status help" -f -a "down" -d 'Stop the local cluster\'s nodes'
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and not __fish_seen_subcommand_from up down status help" -f -a "status" -d 'Same as `kvctl status`'
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and not __fish_seen_subcommand_from up down status help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from up" -l nodes -d 'Number of nodes (for a new cluster)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from up" -l base-port -d 'First UDP port; node i listens on base-port + i - 1' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from up" -l replication -d 'Replicas per key (N), for a new cluster' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from up" -l node -d 'Start only these nodes of an existing cluster (comma-separated ids; default: every node not running), and wait only for the nodes running' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from up" -l max-hint-window -d 'Passed on to every node started (see `kvctl node start --max-hint-window`; default 3h)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from up" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from up" -l detach -d 'Return once the cluster is up, leaving the nodes running'
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from up" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from up" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from down" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from down" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from down" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from status" -l node -d 'Ask this node (default: any node of the cluster)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from status" -l output -r -f -a "table\t''
json\t''"
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from status" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "up" -d 'Create (or restart) a local cluster on loopback and wait until every node sees the ring'
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "down" -d 'Stop the local cluster\'s nodes'
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "status" -d 'Same as `kvctl status`'
complete -c kvctl -n "__fish_kvctl_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kvctl -n "__fish_kvctl_using_subcommand status" -l node -d 'Ask this node (default: any node of the cluster)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand status" -l output -r -f -a "table\t''
json\t''"
complete -c kvctl -n "__fish_kvctl_using_subcommand status" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand status" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_using_subcommand status" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand ring" -l key -d 'Show this key\'s token and preference list' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand ring" -l node -r
complete -c kvctl -n "__fish_kvctl_using_subcommand ring" -l output -r -f -a "table\t''
json\t''"
complete -c kvctl -n "__fish_kvctl_using_subcommand ring" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand ring" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_using_subcommand ring" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand get" -l consistency -d 'ONE, QUORUM or ALL' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand get" -l node -d 'The node that coordinates the request (default: any)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand get" -l output -r -f -a "table\t''
json\t''"
complete -c kvctl -n "__fish_kvctl_using_subcommand get" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand get" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_using_subcommand get" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand put" -l context -d 'The causal context from a get: the write supersedes what that get saw' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand put" -l consistency -d 'ONE, QUORUM or ALL' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand put" -l node -d 'The node that coordinates the request (default: any)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand put" -l output -r -f -a "table\t''
json\t''"
complete -c kvctl -n "__fish_kvctl_using_subcommand put" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand put" -l lww -d 'Last write wins: supersede every version this coordinator knows'
complete -c kvctl -n "__fish_kvctl_using_subcommand put" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_using_subcommand put" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand delete" -l context -d 'Delete only what the get that returned this context saw (default: read first, then delete every version that read sees)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand delete" -l consistency -d 'ONE, QUORUM or ALL' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand delete" -l node -d 'The node that coordinates the request (default: any)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand delete" -l output -r -f -a "table\t''
json\t''"
complete -c kvctl -n "__fish_kvctl_using_subcommand delete" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand delete" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_using_subcommand delete" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand shell" -l node -d 'The node that coordinates every request (default: any)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand shell" -l consistency -d 'The level the shell starts at: ONE, QUORUM or ALL (`CONSISTENCY` changes it)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand shell" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand shell" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_using_subcommand shell" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand repair" -l node -d 'Repair only the ranges this node (an id, e.g. node-2) holds a replica of, coordinated by it' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand repair" -l range -d 'Repair only the ring ranges that end in (AFTER, UPTO] (tokens, decimal or 0x hex)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand repair" -l rate -d 'Most MiB a second each range\'s repair sends: at least 1, at most 256 (nodes hold a repair to that; 0: the most)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand repair" -l output -r -f -a "table\t''
json\t''"
complete -c kvctl -n "__fish_kvctl_using_subcommand repair" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand repair" -l restart -d 'Start over, ignoring ranges an interrupted repair already did'
complete -c kvctl -n "__fish_kvctl_using_subcommand repair" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_using_subcommand repair" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand workers" -l node -d 'Only this node (its id, e.g. node-2)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand workers" -l output -r -f -a "table\t''
json\t''"
complete -c kvctl -n "__fish_kvctl_using_subcommand workers" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand workers" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_using_subcommand workers" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand layout" -l node -d 'Ask this node (default: any node of the cluster)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand layout" -l output -r -f -a "table\t''
json\t''"
complete -c kvctl -n "__fish_kvctl_using_subcommand layout" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand layout" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_using_subcommand layout" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand bench" -l workload -r -f -a "a\t'50 % reads, 50 % updates'
b\t'95 % reads, 5 % updates'
c\t'Reads only'
fsync\t'No cluster: a disk check. Appends of --value-size bytes, each made durable (fdatasync) before the next, by --concurrency writers in --dir, --operations in all, as a node\'s WAL makes writes durable'"
complete -c kvctl -n "__fish_kvctl_using_subcommand bench" -l records -d 'Records loaded before the run' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand bench" -l operations -d 'Operations in the run' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand bench" -l value-size -d 'Value size in bytes' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand bench" -l concurrency -d 'Requests in flight (for --workload fsync: writers, each with its own file; 3 is what the nodes of a local cluster do)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand bench" -l consistency -r
complete -c kvctl -n "__fish_kvctl_using_subcommand bench" -l seed -d 'Seed of the key choice' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand bench" -l key-order -d 'Record keys in number order (user000000000042) or hashed (YCSB\'s default)' -r -f -a "ordered\t''
hashed\t''"
complete -c kvctl -n "__fish_kvctl_using_subcommand bench" -l dir -d 'Directory on the disk to check, for --workload fsync (default: the home directory)' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand bench" -l node -d 'Send every request to this node (it coordinates them all; no retries elsewhere) instead of to a replica of each key (token-aware routing, the default)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand bench" -l attempts -d 'Tries of one request at most, the first included (1: no retries)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand bench" -l output -r -f -a "table\t''
json\t''"
complete -c kvctl -n "__fish_kvctl_using_subcommand bench" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand bench" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kvctl -n "__fish_kvctl_using_subcommand bench" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and not __fish_seen_subcommand_from ca node client help" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and not __fish_seen_subcommand_from ca node client help" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and not __fish_seen_subcommand_from ca node client help" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and not __fish_seen_subcommand_from ca node client help" -f -a "ca" -d 'Create a cluster CA (ca.pem, ca.key) in --out'
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and not __fish_seen_subcommand_from ca node client help" -f -a "node" -d 'Create a node certificate signed by the CA in --ca-dir'
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and not __fish_seen_subcommand_from ca node client help" -f -a "client" -d 'Create a client certificate signed by the CA in --ca-dir'
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and not __fish_seen_subcommand_from ca node client help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from ca" -l out -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from ca" -l days -d 'Days the CA is valid for (certificates it signs stop working when it expires)' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from ca" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from ca" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from ca" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from node" -l ca-dir -d 'Directory holding ca.pem and ca.key' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from node" -l id -d 'The node\'s id, which the certificate vouches for (default: node- and 8 random hex digits). Every node of a cluster needs its own' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from node" -l hosts -d 'Extra host names or IP addresses the node is reached by' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from node" -l out -d 'Where to write node.pem, node.key (and a copy of ca.pem)' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from node" -l days -d 'Days the certificate is valid for' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from node" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from node" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from node" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from client" -l ca-dir -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from client" -l name -r
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from client" -l out -d 'Where to write client.pem, client.key (and a copy of ca.pem)' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from client" -l role -d 'What the certificate may ask: app (get, put, delete, status, ring) or admin (also repair, membership and maintenance)' -r -f -a "app\t''
admin\t''"
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from client" -l days -d 'Days the certificate is valid for' -r
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from client" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from client" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from client" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from help" -f -a "ca" -d 'Create a cluster CA (ca.pem, ca.key) in --out'
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from help" -f -a "node" -d 'Create a node certificate signed by the CA in --ca-dir'
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from help" -f -a "client" -d 'Create a client certificate signed by the CA in --ca-dir'
complete -c kvctl -n "__fish_kvctl_using_subcommand cert; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kvctl -n "__fish_kvctl_using_subcommand completions" -l home -d 'Where the local cluster lives (description, certificates, node data and logs); client commands find the cluster here' -r -F
complete -c kvctl -n "__fish_kvctl_using_subcommand completions" -s h -l help -d 'Print help'
complete -c kvctl -n "__fish_kvctl_using_subcommand completions" -s V -l version -d 'Print version'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and not __fish_seen_subcommand_from node cluster status ring get put delete shell repair workers layout bench cert completions help" -f -a "node" -d 'Run a node (its directory is --home: data/, certs/ with ca.pem, node.pem, node.key)'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and not __fish_seen_subcommand_from node cluster status ring get put delete shell repair workers layout bench cert completions help" -f -a "cluster" -d 'Start, stop and inspect a local multi-node cluster'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and not __fish_seen_subcommand_from node cluster status ring get put delete shell repair workers layout bench cert completions help" -f -a "status" -d 'Each node\'s state as the cluster sees it'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and not __fish_seen_subcommand_from node cluster status ring get put delete shell repair workers layout bench cert completions help" -f -a "ring" -d 'Tokens and ownership per node; with --key, a key\'s token and preference list'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and not __fish_seen_subcommand_from node cluster status ring get put delete shell repair workers layout bench cert completions help" -f -a "get" -d 'Read a key: every sibling value and the causal context'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and not __fish_seen_subcommand_from node cluster status ring get put delete shell repair workers layout bench cert completions help" -f -a "put" -d 'Write a key'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and not __fish_seen_subcommand_from node cluster status ring get put delete shell repair workers layout bench cert completions help" -f -a "delete" -d 'Delete a key (writes a versioned tombstone)'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and not __fish_seen_subcommand_from node cluster status ring get put delete shell repair workers layout bench cert completions help" -f -a "shell" -d 'An interactive shell (REPL): get, put, delete, ring, status, CONSISTENCY, OUTPUT, help. With standard input not a terminal, runs its lines as a script'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and not __fish_seen_subcommand_from node cluster status ring get put delete shell repair workers layout bench cert completions help" -f -a "repair" -d 'Compare every token range\'s replicas (Merkle trees) and merge what differs into each'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and not __fish_seen_subcommand_from node cluster status ring get put delete shell repair workers layout bench cert completions help" -f -a "workers" -d 'Each node\'s background workers (state, progress, errors) and its engine\'s figures'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and not __fish_seen_subcommand_from node cluster status ring get put delete shell repair workers layout bench cert completions help" -f -a "layout" -d 'The cluster layout: its version, the versions live during a change, and each node\'s address, datacenter, rack, tokens and state'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and not __fish_seen_subcommand_from node cluster status ring get put delete shell repair workers layout bench cert completions help" -f -a "bench" -d 'Run a YCSB-style workload against the cluster and report throughput and latency'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and not __fish_seen_subcommand_from node cluster status ring get put delete shell repair workers layout bench cert completions help" -f -a "cert" -d 'Create a cluster CA and node or client certificates for clusters on several machines'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and not __fish_seen_subcommand_from node cluster status ring get put delete shell repair workers layout bench cert completions help" -f -a "completions" -d 'Print shell completions for bash, zsh or fish'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and not __fish_seen_subcommand_from node cluster status ring get put delete shell repair workers layout bench cert completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and __fish_seen_subcommand_from node" -f -a "start" -d 'Start a node in the foreground (SIGINT or SIGTERM stops it cleanly)'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "up" -d 'Create (or restart) a local cluster on loopback and wait until every node sees the ring'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "down" -d 'Stop the local cluster\'s nodes'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "status" -d 'Same as `kvctl status`'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and __fish_seen_subcommand_from cert" -f -a "ca" -d 'Create a cluster CA (ca.pem, ca.key) in --out'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and __fish_seen_subcommand_from cert" -f -a "node" -d 'Create a node certificate signed by the CA in --ca-dir'
complete -c kvctl -n "__fish_kvctl_using_subcommand help; and __fish_seen_subcommand_from cert" -f -a "client" -d 'Create a client certificate signed by the CA in --ca-dir'
