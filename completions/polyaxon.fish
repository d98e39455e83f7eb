# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_polyaxon_global_optspecs
    string join \n v/verbose h/help V/version
end

function __fish_polyaxon_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_polyaxon_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_polyaxon_using_subcommand
    set -l cmd (__fish_polyaxon_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c polyaxon -n "__fish_polyaxon_needs_command" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "run" -d 'Run a polyaxonfile: check it, snapshot the code, start the job'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "check" -d 'Check polyaxonfiles: syntax, schema, params and templates'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "hub" -d 'The component hub: the components `hubRef` and `run --hub` find (list, print)'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "project" -d 'Projects: create, list, show, change, delete'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "projects" -d 'Projects: create, list, show, change, delete'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "ops" -d 'Runs (operations): list, inspect, follow, stop, restart, download'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "logs" -d 'Show a run\'s logs (the last run used, or `--uid`), following it while it runs'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "config" -d 'Show, set and reset the CLI\'s configuration'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "login" -d 'Log in to a server (the embedded default needs no login)'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "logout" -d 'Forget the credentials of the configured server'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "whoami" -d 'Show who you are on the configured server'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "token" -d 'Your personal tokens on the server: list, create, revoke'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "tokens" -d 'Your personal tokens on the server: list, create, revoke'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "version" -d 'Show the CLI\'s version and the server\'s'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "init" -d 'Set the current project for this directory (kept in `./.polyaxon/`)'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "dashboard" -d 'Open the web dashboard'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "completion" -d 'Print a shell completion script'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "admin" -d 'Deploy, upgrade and tear down the server on a Kubernetes cluster'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "agent" -d 'Agents: claim queued runs and run them (`agent start`), list them, show their queues'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "connections" -d 'Connections: notifiers (Slack, webhooks, …) and what operations name in `connections:`'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "connection" -d 'Connections: notifiers (Slack, webhooks, …) and what operations name in `connections:`'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "queue" -d 'Queues runs wait in for agents: list, create or change, delete'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "queues" -d 'Queues runs wait in for agents: list, create or change, delete'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "port-forward" -d 'Forward the deployed server (or another Service) to a local port, until Ctrl-C'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "server" -d 'Run the API server'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "sidecar" -d 'Send a run\'s files to the server from beside its job (the Kubernetes executor puts it in each pod), every few seconds and once more when told to stop'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "generate-docs" -d 'Write the shell completions and man pages (for packagers; the repository keeps them)'
complete -c polyaxon -n "__fish_polyaxon_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -s f -l file -d 'The polyaxonfile(s); later files patch earlier ones. Default: `polyaxonfile.yml` and the other names upstream looks for, here' -r -F
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -l hub -d 'Run a component of the hub, `NAME` or `NAME:TAG` (`polyaxon hub ls` lists them): as an operation with `hubRef: NAME[:TAG]`; `-f` files after it patch it' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -s P -l param -d 'A value for an input: `-P lr=0.01` (repeatable)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -l hparam -d 'A searched param, `NAME=KIND:VALUE`: `-HP lr=choice:[0.1,0.01]`, `-HP bs=range:16:128:16`, `-HP lr=loguniform:-9:-2` (any matrix param kind); makes the run a search (repeatable)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -l matrix-kind -d 'The search\'s kind with `-HP`: grid (the default), random, mapping or hyperband' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -l matrix-concurrency -d 'Trials at once with `-HP` (default 1)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -l matrix-num-runs -d 'How many trials with `-HP` (random: required; grid: a cap)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the directory\'s, else `default`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -s n -l name -d 'A name for the run' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -l tags -d 'Tags, comma-separated' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -l description -d 'A description' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -l executor -l exc -d 'Where the job runs: `process` (this machine, the default), `docker`, or `kubernetes` (`k8s`: the cluster of the kubeconfig\'s context; `POLYAXON_K8S_CONTEXT`, `POLYAXON_K8S_NAMESPACE` choose). Default: POLYAXON_EXECUTOR, else `config set --executor`' -r -f -a "process\t''
docker\t''
kubernetes\t''
k8s\t''"
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -l presets -d 'Named presets to apply, comma-separated' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -l upload-from -l u-from -d 'The directory to upload (implies `-u`; default: the directory the code runs from)' -r -F
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -l upload-to -l u-to -d 'Where in the run\'s artifacts the upload goes (implies `-u`; `/` for the root)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -l queue -d 'The queue the run waits in for an agent (upstream\'s `agent/queue` names work; default: the spec\'s `queue`, else the project\'s, else `default`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -l priority -d 'Its priority in the queue: higher runs are claimed first (default 0)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -l approved -d '`--approved false` holds the run until `polyaxon ops approve` (as `isApproved: false`)' -r -f -a "true\t''
false\t''"
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -s w -l watch -d 'Follow the run\'s statuses until it ends'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -s l -l logs -l log -d 'Follow the run\'s logs until it ends (Ctrl-C stops the run)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -l dry-run -d 'Print the Kubernetes manifests the run becomes (`-o yaml`, the default, or `-o json`) instead of running it. Needs no cluster'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -l stdout-metrics -d 'Read `name=value` lines the job prints as metrics (also: `POLYAXON_STDOUT_METRICS=true` in the container\'s env)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -l cache -d 'Reuse the results of a run with the same component, inputs and code that succeeded, instead of running again (default: when the spec has a `cache` section, and for a DAG\'s operations)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -l nocache -d 'Run even when an equal run succeeded before (the cache off)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -s u -l upload -d 'Upload the code to the run\'s artifacts (`uploads/`) before it starts: in a git repository the files of the run\'s code snapshot, elsewhere the directory\'s files less what `.polyaxonignore` excludes. The job finds them under its artifacts path'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -l local -d 'Run it on this machine even when an agent serves its queue'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand run" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand check" -s f -l file -d 'The polyaxonfile(s); later files patch earlier ones (presets, overrides)' -r -F
complete -c polyaxon -n "__fish_polyaxon_using_subcommand check" -s P -l param -d 'A value for an input: `-P lr=0.01` (repeatable)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand check" -l presets -d 'Named presets to apply, comma-separated' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand check" -s o -l output -d 'Output format' -r -f -a "table\t''
json\t''
yaml\t''
csv\t''"
complete -c polyaxon -n "__fish_polyaxon_using_subcommand check" -s l -l lint -d 'Check the specification only: no values needed, templates not rendered'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand check" -l upgrade -d 'Print the file as a version 1.1 polyaxonfile (upgrading v0.6 files)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand check" -l schema -d 'Print the JSON Schema of polyaxonfiles (for editors) and exit'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand check" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand check" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand check" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand hub; and not __fish_seen_subcommand_from ls get help" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand hub; and not __fish_seen_subcommand_from ls get help" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand hub; and not __fish_seen_subcommand_from ls get help" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand hub; and not __fish_seen_subcommand_from ls get help" -f -a "ls" -d 'List the components: name, tag, where each comes from, what it is'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand hub; and not __fish_seen_subcommand_from ls get help" -f -a "get" -d 'Print a component\'s polyaxonfile (`NAME` or `NAME:TAG`)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand hub; and not __fish_seen_subcommand_from ls get help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand hub; and __fish_seen_subcommand_from ls" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand hub; and __fish_seen_subcommand_from ls" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand hub; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand hub; and __fish_seen_subcommand_from ls" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand hub; and __fish_seen_subcommand_from get" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand hub; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand hub; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand hub; and __fish_seen_subcommand_from help" -f -a "ls" -d 'List the components: name, tag, where each comes from, what it is'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand hub; and __fish_seen_subcommand_from help" -f -a "get" -d 'Print a component\'s polyaxonfile (`NAME` or `NAME:TAG`)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand hub; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and not __fish_seen_subcommand_from create ls get update delete dashboard help" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and not __fish_seen_subcommand_from create ls get update delete dashboard help" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and not __fish_seen_subcommand_from create ls get update delete dashboard help" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and not __fish_seen_subcommand_from create ls get update delete dashboard help" -f -a "create" -d 'Create a project'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and not __fish_seen_subcommand_from create ls get update delete dashboard help" -f -a "ls" -d 'List projects'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and not __fish_seen_subcommand_from create ls get update delete dashboard help" -f -a "get" -d 'Show a project'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and not __fish_seen_subcommand_from create ls get update delete dashboard help" -f -a "update" -d 'Change a project\'s name, description, tags or visibility'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and not __fish_seen_subcommand_from create ls get update delete dashboard help" -f -a "delete" -d 'Delete a project with its runs and their files'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and not __fish_seen_subcommand_from create ls get update delete dashboard help" -f -a "dashboard" -d 'Open a project in the web dashboard'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and not __fish_seen_subcommand_from create ls get update delete dashboard help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from create" -s n -l name -d 'The project\'s name, `NAME` or `OWNER/NAME`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from create" -l description -d 'What the project is about' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from create" -l tags -d 'Tags, comma-separated' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from create" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from create" -l public -d 'Let everyone on the server see it'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from create" -l init -d 'Also make it this directory\'s current project (as `polyaxon init`)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from ls" -l owner -d 'Whose projects (default: yours)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from ls" -s q -l query -d 'Only projects matching this query, e.g. `tags: vision, name: %mnist%`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from ls" -s s -l sort -d 'Order, e.g. `-created_at` or `name`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from ls" -s l -l limit -d 'At most this many' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from ls" -l offset -d 'Skip this many' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from ls" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from ls" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from ls" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from get" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from get" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from get" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from update" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from update" -s n -l name -d 'A new name' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from update" -l description -d 'A new description' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from update" -l tags -d 'New tags, comma-separated (replacing the old ones)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from update" -l private -d '`true` to make it private, `false` to make it public' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from update" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from update" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from update" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from update" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from delete" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from delete" -s y -l yes -d 'Do not ask for confirmation'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from dashboard" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from dashboard" -s y -l yes -d 'Open the browser without asking'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from dashboard" -l url -d 'Print the address instead of opening a browser'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from dashboard" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from dashboard" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from dashboard" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a project'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from help" -f -a "ls" -d 'List projects'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from help" -f -a "get" -d 'Show a project'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from help" -f -a "update" -d 'Change a project\'s name, description, tags or visibility'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete a project with its runs and their files'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from help" -f -a "dashboard" -d 'Open a project in the web dashboard'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand project; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and not __fish_seen_subcommand_from create ls get update delete dashboard help" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and not __fish_seen_subcommand_from create ls get update delete dashboard help" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and not __fish_seen_subcommand_from create ls get update delete dashboard help" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and not __fish_seen_subcommand_from create ls get update delete dashboard help" -f -a "create" -d 'Create a project'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and not __fish_seen_subcommand_from create ls get update delete dashboard help" -f -a "ls" -d 'List projects'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and not __fish_seen_subcommand_from create ls get update delete dashboard help" -f -a "get" -d 'Show a project'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and not __fish_seen_subcommand_from create ls get update delete dashboard help" -f -a "update" -d 'Change a project\'s name, description, tags or visibility'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and not __fish_seen_subcommand_from create ls get update delete dashboard help" -f -a "delete" -d 'Delete a project with its runs and their files'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and not __fish_seen_subcommand_from create ls get update delete dashboard help" -f -a "dashboard" -d 'Open a project in the web dashboard'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and not __fish_seen_subcommand_from create ls get update delete dashboard help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from create" -s n -l name -d 'The project\'s name, `NAME` or `OWNER/NAME`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from create" -l description -d 'What the project is about' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from create" -l tags -d 'Tags, comma-separated' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from create" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from create" -l public -d 'Let everyone on the server see it'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from create" -l init -d 'Also make it this directory\'s current project (as `polyaxon init`)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from ls" -l owner -d 'Whose projects (default: yours)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from ls" -s q -l query -d 'Only projects matching this query, e.g. `tags: vision, name: %mnist%`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from ls" -s s -l sort -d 'Order, e.g. `-created_at` or `name`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from ls" -s l -l limit -d 'At most this many' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from ls" -l offset -d 'Skip this many' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from ls" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from ls" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from ls" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from get" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from get" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from get" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from update" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from update" -s n -l name -d 'A new name' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from update" -l description -d 'A new description' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from update" -l tags -d 'New tags, comma-separated (replacing the old ones)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from update" -l private -d '`true` to make it private, `false` to make it public' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from update" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from update" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from update" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from update" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from delete" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from delete" -s y -l yes -d 'Do not ask for confirmation'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from dashboard" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from dashboard" -s y -l yes -d 'Open the browser without asking'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from dashboard" -l url -d 'Print the address instead of opening a browser'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from dashboard" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from dashboard" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from dashboard" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a project'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from help" -f -a "ls" -d 'List projects'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from help" -f -a "get" -d 'Show a project'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from help" -f -a "update" -d 'Change a project\'s name, description, tags or visibility'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete a project with its runs and their files'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from help" -f -a "dashboard" -d 'Open a project in the web dashboard'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand projects; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -l uid -l uuid -d 'The run\'s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -f -a "ls" -d 'List a project\'s runs'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -f -a "get" -d 'Show a run'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -f -a "statuses" -d 'Show a run\'s status history, or follow it with `--watch`'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -f -a "notifications" -d 'Show a run\'s notifications and hooks: each delivery\'s state, tries and last error'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -f -a "logs" -d 'Show a run\'s logs, following it while it runs'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -f -a "metrics" -d 'Show a run\'s metrics: last values, or the series (`--plot` draws them)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -f -a "artifacts" -d 'Download a run\'s files'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -f -a "code" -d 'Show where a run\'s code came from, or write it out (`--checkout DIR`)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -f -a "stop" -d 'Stop a run'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -f -a "skip" -d 'Skip a run that has not started (an operation of a DAG)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -f -a "delete" -d 'Delete a run and its files'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -f -a "restart" -d 'Run a run again as a new run (`--copy` starts from a copy of its files)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -f -a "resume" -d 'Continue a finished run in place, with its files'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -f -a "update" -d 'Change a run\'s name, description or tags'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -f -a "approve" -d 'Approve a run waiting for approval'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -f -a "dashboard" -d 'Open a run in the web dashboard'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -f -a "service" -d 'Reach a running service: its address here, or its ports forwarded from the cluster'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -f -a "execute" -d 'Execute a created run on this machine, in the foreground (what `polyaxon run` starts in the background)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and not __fish_seen_subcommand_from ls get statuses notifications logs metrics artifacts code stop skip delete restart resume update approve dashboard service execute help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from ls" -s q -l query -d 'Only runs matching this query, e.g. `status: running|failed, metrics.loss: <0.2`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from ls" -s s -l sort -d 'Order, e.g. `-created_at` or `metrics.loss` (default: last changed first)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from ls" -s l -l limit -d 'At most this many' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from ls" -l offset -d 'Skip this many (also `-off`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from ls" -s c -l columns -d 'Columns to show, comma-separated: `uuid, name, status, kind, user, tags, created, started, finished, duration, description, params.NAME, metrics.NAME, …`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from ls" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from ls" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from ls" -l uid -l uuid -d 'The run\'s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from ls" -l io -d 'Show inputs and outputs (params and last metric values) as columns'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from ls" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from ls" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from get" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from get" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from get" -l uid -l uuid -d 'The run\'s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from get" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from statuses" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from statuses" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from statuses" -l uid -l uuid -d 'The run\'s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from statuses" -s w -l watch -d 'Keep printing new statuses until the run ends'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from statuses" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from statuses" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from statuses" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from notifications" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from notifications" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from notifications" -l uid -l uuid -d 'The run\'s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from notifications" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from notifications" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from notifications" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from logs" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from logs" -l uid -l uuid -d 'The run\'s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from logs" -l no-follow -d 'Print what is there and stop, even while the run goes on (also `-nf`)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from logs" -l hide-time -d 'Without timestamps'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from logs" -s a -l all-info -d 'With the node, pod and container of each line'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from logs" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from logs" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from logs" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from metrics" -l names -d 'Only these metrics, comma-separated' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from metrics" -l sample -d 'At most this many points per series (keeping its shape); default: 1,000, or the chart\'s resolution with `--plot`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from metrics" -l height -d 'Chart height in lines (with `--plot`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from metrics" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from metrics" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from metrics" -l uid -l uuid -d 'The run\'s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from metrics" -l plot -d 'Draw the series as charts in the terminal'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from metrics" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from metrics" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from metrics" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from artifacts" -s f -l file -d 'A file to download, relative to the run\'s directory (repeatable)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from artifacts" -s d -l dir -d 'A directory to download (repeatable)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from artifacts" -l lineage-name -d 'The artifacts of the run\'s lineage with this name (repeatable): their paths are downloaded (`polyaxon.tracking`\'s `log_model_ref`, `log_artifact_ref`, …)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from artifacts" -l lineage-kind -d 'The artifacts of the run\'s lineage of this kind (`model`, `data`, `file`, `dir`, `tensorboard`, …; repeatable)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from artifacts" -l path -d 'Where to put them (default: `./<run uuid>`)' -r -F
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from artifacts" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from artifacts" -l uid -l uuid -d 'The run\'s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from artifacts" -l no-untar -d 'Keep directories as `.tar.gz` archives instead of unpacking them'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from artifacts" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from artifacts" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from artifacts" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from code" -l checkout -d 'Write the run\'s code into this directory (new or empty)' -r -F
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from code" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from code" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from code" -l uid -l uuid -d 'The run\'s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from code" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from code" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from code" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from stop" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from stop" -l uid -l uuid -d 'The run\'s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from stop" -s y -l yes -d 'Do not ask for confirmation'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from stop" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from stop" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from stop" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from skip" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from skip" -l uid -l uuid -d 'The run\'s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from skip" -s y -l yes -d 'Do not ask for confirmation'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from skip" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from skip" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from skip" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from delete" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from delete" -l uid -l uuid -d 'The run\'s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from delete" -s y -l yes -d 'Do not ask for confirmation'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from restart" -l name -d 'A name for the new run' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from restart" -l tags -d 'Tags for the new run, comma-separated' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from restart" -l description -d 'A description for the new run' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from restart" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from restart" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from restart" -l uid -l uuid -d 'The run\'s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from restart" -s c -l copy -d 'Start from a copy of the run\'s files (outputs, checkpoints) instead of none'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from restart" -l downstream -d 'With an operation of a DAG: run its DAG again from this operation — it and everything that depends on it run again, the other operations\' results are reused'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from restart" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from restart" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from restart" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from resume" -l name -d 'A new name for the run' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from resume" -l tags -d 'New tags, comma-separated' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from resume" -l description -d 'A new description' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from resume" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from resume" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from resume" -l uid -l uuid -d 'The run\'s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from resume" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from resume" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from resume" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from update" -s n -l name -d 'A new name' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from update" -l description -d 'A new description' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from update" -l tags -d 'Tags to add, comma-separated' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from update" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from update" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from update" -l uid -l uuid -d 'The run\'s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from update" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from update" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from update" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from approve" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from approve" -l uid -l uuid -d 'The run\'s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from approve" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from approve" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from approve" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from dashboard" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from dashboard" -l uid -l uuid -d 'The run\'s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from dashboard" -s y -l yes -d 'Open the browser without asking'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from dashboard" -l url -d 'Print the address instead of opening a browser'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from dashboard" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from dashboard" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from dashboard" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from service" -l port -d 'The local port of a forwarded service (default: its own port when free, else any)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from service" -l address -d 'The local address a forwarded service listens on (also `-add`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from service" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from service" -l uid -l uuid -d 'The run\'s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from service" -s y -l yes -d 'Open the browser without asking'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from service" -l url -d 'Print the address instead of opening a browser'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from service" -l external -d 'Accepted for upstream\'s scripts: services are reached directly or forwarded'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from service" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from service" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from service" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from execute" -l executor -l exc -d 'Where the job runs: `process` (this machine), `docker` or `kubernetes` (`k8s`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from execute" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from execute" -l uid -l uuid -d 'The run\'s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from execute" -l run-from-stdin -d 'Wait for the run on standard input (`OWNER/PROJECT UUID`), the store opened meanwhile; end-of-file exits quietly (what `polyaxon run` uses)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from execute" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from execute" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from execute" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from help" -f -a "ls" -d 'List a project\'s runs'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from help" -f -a "get" -d 'Show a run'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from help" -f -a "statuses" -d 'Show a run\'s status history, or follow it with `--watch`'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from help" -f -a "notifications" -d 'Show a run\'s notifications and hooks: each delivery\'s state, tries and last error'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from help" -f -a "logs" -d 'Show a run\'s logs, following it while it runs'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from help" -f -a "metrics" -d 'Show a run\'s metrics: last values, or the series (`--plot` draws them)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from help" -f -a "artifacts" -d 'Download a run\'s files'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from help" -f -a "code" -d 'Show where a run\'s code came from, or write it out (`--checkout DIR`)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from help" -f -a "stop" -d 'Stop a run'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from help" -f -a "skip" -d 'Skip a run that has not started (an operation of a DAG)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete a run and its files'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from help" -f -a "restart" -d 'Run a run again as a new run (`--copy` starts from a copy of its files)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from help" -f -a "resume" -d 'Continue a finished run in place, with its files'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from help" -f -a "update" -d 'Change a run\'s name, description or tags'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from help" -f -a "approve" -d 'Approve a run waiting for approval'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from help" -f -a "dashboard" -d 'Open a run in the web dashboard'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from help" -f -a "service" -d 'Reach a running service: its address here, or its ports forwarded from the cluster'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from help" -f -a "execute" -d 'Execute a created run on this machine, in the foreground (what `polyaxon run` starts in the background)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand ops; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand logs" -s p -l project -d 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand logs" -l uid -l uuid -d 'The run\'s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand logs" -l no-follow -d 'Print what is there and stop, even while the run goes on (also `-nf`)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand logs" -l hide-time -d 'Without timestamps'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand logs" -s a -l all-info -d 'With the node, pod and container of each line'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand logs" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand logs" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand logs" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and not __fish_seen_subcommand_from show get set purge help" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and not __fish_seen_subcommand_from show get set purge help" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and not __fish_seen_subcommand_from show get set purge help" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and not __fish_seen_subcommand_from show get set purge help" -f -a "show" -d 'Show the configuration and where it comes from'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and not __fish_seen_subcommand_from show get set purge help" -f -a "get" -d 'Print configuration values, one per line'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and not __fish_seen_subcommand_from show get set purge help" -f -a "set" -d 'Change configuration values'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and not __fish_seen_subcommand_from show get set purge help" -f -a "purge" -d 'Reset the configuration, credentials and caches (never the runs kept here)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and not __fish_seen_subcommand_from show get set purge help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from show" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from get" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from set" -l host -d 'The server, e.g. `http://localhost:8000`; `""` goes back to the embedded store' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from set" -l verify-ssl -d 'Whether to check the server\'s TLS certificate' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from set" -l timeout -d 'Seconds before a call to the server gives up' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from set" -l owner -d 'The owner of projects named without one (default: you)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from set" -l no-api -d 'Make no calls to the server (kept for upstream\'s scripts)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from set" -l debug -d 'Print more detail about calls' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from set" -l home -d 'Keep the CLI\'s files (and the embedded store) in this directory from now on' -r -F
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from set" -l executor -d 'The executor of `polyaxon run` without `--executor`: `process`, `docker` or `kubernetes` (`k8s`); `""` goes back to `process`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from set" -l disable-errors-reporting -d 'Accepted for upstream\'s scripts; nothing is ever reported' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from set" -l no-purge -d 'Keep the cached user when the host changes'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from set" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from set" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from purge" -l cache-only -d 'Only the caches (current project, last run, user), not the configuration'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from purge" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from purge" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from purge" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show the configuration and where it comes from'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "get" -d 'Print configuration values, one per line'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "set" -d 'Change configuration values'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "purge" -d 'Reset the configuration, credentials and caches (never the runs kept here)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand login" -s t -l token -d 'An API token (instead of a username and password)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand login" -s u -l username -d 'Your username (asked for at a terminal when not given)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand login" -s p -l password -d 'Your password (asked for at a terminal when not given; visible to other processes here, so prefer the prompt or `--password-stdin`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand login" -l password-stdin -d 'Read the password from standard input'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand login" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand login" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand login" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand logout" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand logout" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand logout" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand whoami" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand whoami" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand whoami" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand whoami" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and not __fish_seen_subcommand_from ls create revoke delete help" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and not __fish_seen_subcommand_from ls create revoke delete help" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and not __fish_seen_subcommand_from ls create revoke delete help" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and not __fish_seen_subcommand_from ls create revoke delete help" -f -a "ls" -d 'List your tokens (never their secrets): id, name, created, expiry'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and not __fish_seen_subcommand_from ls create revoke delete help" -f -a "create" -d 'Create a token; its secret is printed this once'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and not __fish_seen_subcommand_from ls create revoke delete help" -f -a "revoke" -d 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and not __fish_seen_subcommand_from ls create revoke delete help" -f -a "delete" -d 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and not __fish_seen_subcommand_from ls create revoke delete help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and __fish_seen_subcommand_from ls" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and __fish_seen_subcommand_from ls" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and __fish_seen_subcommand_from ls" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and __fish_seen_subcommand_from create" -l name -d 'A name to tell it by (what it is for: `ci`, `laptop`, …)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and __fish_seen_subcommand_from create" -l expiration -d 'How long it lasts: seconds, or with a unit (`90m`, `12h`, `30d`); default: until revoked' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and __fish_seen_subcommand_from create" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and __fish_seen_subcommand_from revoke" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and __fish_seen_subcommand_from revoke" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "ls" -d 'List your tokens (never their secrets): id, name, created, expiry'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a token; its secret is printed this once'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and not __fish_seen_subcommand_from ls create revoke delete help" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and not __fish_seen_subcommand_from ls create revoke delete help" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and not __fish_seen_subcommand_from ls create revoke delete help" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and not __fish_seen_subcommand_from ls create revoke delete help" -f -a "ls" -d 'List your tokens (never their secrets): id, name, created, expiry'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and not __fish_seen_subcommand_from ls create revoke delete help" -f -a "create" -d 'Create a token; its secret is printed this once'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and not __fish_seen_subcommand_from ls create revoke delete help" -f -a "revoke" -d 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and not __fish_seen_subcommand_from ls create revoke delete help" -f -a "delete" -d 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and not __fish_seen_subcommand_from ls create revoke delete help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and __fish_seen_subcommand_from ls" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and __fish_seen_subcommand_from ls" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and __fish_seen_subcommand_from ls" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and __fish_seen_subcommand_from create" -l name -d 'A name to tell it by (what it is for: `ci`, `laptop`, …)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and __fish_seen_subcommand_from create" -l expiration -d 'How long it lasts: seconds, or with a unit (`90m`, `12h`, `30d`); default: until revoked' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and __fish_seen_subcommand_from create" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and __fish_seen_subcommand_from help" -f -a "ls" -d 'List your tokens (never their secrets): id, name, created, expiry'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a token; its secret is printed this once'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand tokens; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand version" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand version" -l check -d 'Also check that the server\'s version works with this CLI'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand version" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand version" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand version" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand init" -s p -l project -d 'The project, `NAME` or `OWNER/NAME`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand init" -l polyaxonfile -d 'Also write a starter `polyaxonfile.yml` (never over an existing one)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand init" -l polyaxonignore -d 'Also write a `.polyaxonignore` (files left out of code snapshots)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand init" -s y -l yes -d 'Answer yes to questions (create a missing project, replace another one set here)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand init" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand init" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand init" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand dashboard" -s y -l yes -d 'Open the browser without asking'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand dashboard" -l url -d 'Print the address instead of opening a browser'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand dashboard" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand dashboard" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand dashboard" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand completion" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand completion" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand completion" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and not __fish_seen_subcommand_from deploy upgrade teardown help" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and not __fish_seen_subcommand_from deploy upgrade teardown help" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and not __fish_seen_subcommand_from deploy upgrade teardown help" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and not __fish_seen_subcommand_from deploy upgrade teardown help" -f -a "deploy" -d 'Deploy the server, its database and the executor\'s RBAC to a cluster'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and not __fish_seen_subcommand_from deploy upgrade teardown help" -f -a "upgrade" -d 'Apply a changed config to a deploy (its generated secrets are kept)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and not __fish_seen_subcommand_from deploy upgrade teardown help" -f -a "teardown" -d 'Remove a deploy; the database\'s volume stays unless `--delete-volumes`'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and not __fish_seen_subcommand_from deploy upgrade teardown help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from deploy" -s f -l file -d 'The deployment config (upstream\'s keys where they apply; see the README)' -r -F
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from deploy" -l context -d 'The kubeconfig context (default: the current one)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from deploy" -s t -l deployment-type -d 'Accepted for upstream\'s scripts: the deploy is always Kubernetes manifests' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from deploy" -l manager-path -d 'Accepted for upstream\'s scripts (there is no chart)' -r -F
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from deploy" -l timeout -d 'How long to wait for the rollout, in seconds' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from deploy" -s o -l output -d '`yaml` or `json` (with `--dry-run`)' -r -f -a "yaml\t''
json\t''"
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from deploy" -l check -d 'Check the config and the cluster\'s access; change nothing'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from deploy" -l dry-run -d 'Print the manifests (`-o yaml`, the default, or `-o json`); change nothing'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from deploy" -l show-secrets -d 'With `--dry-run`: print secrets\' values too'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from deploy" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from deploy" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from deploy" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from upgrade" -s f -l file -d 'The deployment config (upstream\'s keys where they apply; see the README)' -r -F
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from upgrade" -l context -d 'The kubeconfig context (default: the current one)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from upgrade" -s t -l deployment-type -d 'Accepted for upstream\'s scripts: the deploy is always Kubernetes manifests' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from upgrade" -l manager-path -d 'Accepted for upstream\'s scripts (there is no chart)' -r -F
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from upgrade" -l timeout -d 'How long to wait for the rollout, in seconds' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from upgrade" -s o -l output -d '`yaml` or `json` (with `--dry-run`)' -r -f -a "yaml\t''
json\t''"
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from upgrade" -l check -d 'Check the config and the cluster\'s access; change nothing'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from upgrade" -l dry-run -d 'Print the manifests (`-o yaml`, the default, or `-o json`); change nothing'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from upgrade" -l show-secrets -d 'With `--dry-run`: print secrets\' values too'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from upgrade" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from upgrade" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from upgrade" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from teardown" -s f -l file -d 'The deployment config (upstream\'s keys where they apply; see the README)' -r -F
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from teardown" -l context -d 'The kubeconfig context (default: the current one)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from teardown" -s t -l deployment-type -d 'Accepted for upstream\'s scripts: the deploy is always Kubernetes manifests' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from teardown" -l manager-path -d 'Accepted for upstream\'s scripts (there is no chart)' -r -F
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from teardown" -l delete-volumes -d 'Also delete the database\'s volume, the secrets and the namespace (data is lost)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from teardown" -s y -l yes -d 'Do not ask'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from teardown" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from teardown" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from teardown" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from help" -f -a "deploy" -d 'Deploy the server, its database and the executor\'s RBAC to a cluster'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from help" -f -a "upgrade" -d 'Apply a changed config to a deploy (its generated secrets are kept)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from help" -f -a "teardown" -d 'Remove a deploy; the database\'s volume stays unless `--delete-volumes`'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand admin; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and not __fish_seen_subcommand_from start ls status help" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and not __fish_seen_subcommand_from start ls status help" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and not __fish_seen_subcommand_from start ls status help" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and not __fish_seen_subcommand_from start ls status help" -f -a "start" -d 'Claim queued runs and run them here, until SIGTERM or Ctrl-C (then drain)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and not __fish_seen_subcommand_from start ls status help" -f -a "ls" -d 'List the agents: name, version, executor, queues, load, state, last seen'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and not __fish_seen_subcommand_from start ls status help" -f -a "status" -d 'Show each queue: waiting and running runs, concurrency, the agents serving it'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and not __fish_seen_subcommand_from start ls status help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from start" -l queue -d 'The queues to serve, comma-separated (upstream\'s `agent/queue` names work)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from start" -l executor -l exc -d 'Where runs run: `process`, `docker` or `kubernetes` (default: as `polyaxon run`)' -r -f -a "process\t''
docker\t''
kubernetes\t''
k8s\t''"
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from start" -l max-concurrency -d 'Runs at once' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from start" -l name -d 'The agent\'s name (default: HOST-PID); one agent of a name runs at a time' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from start" -l lease -d 'How long a claim lasts without a heartbeat, in seconds: an agent killed outright loses its runs to the others after this long' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from start" -l handoff -d 'On SIGTERM, stop the running runs and queue them again for another agent instead of letting them finish'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from start" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from start" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from start" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from ls" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from ls" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from ls" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from status" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from status" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from help" -f -a "start" -d 'Claim queued runs and run them here, until SIGTERM or Ctrl-C (then drain)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from help" -f -a "ls" -d 'List the agents: name, version, executor, queues, load, state, last seen'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from help" -f -a "status" -d 'Show each queue: waiting and running runs, concurrency, the agents serving it'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand agent; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and not __fish_seen_subcommand_from ls get create delete help" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and not __fish_seen_subcommand_from ls get create delete help" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and not __fish_seen_subcommand_from ls get create delete help" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and not __fish_seen_subcommand_from ls get create delete help" -f -a "ls" -d 'List the connections: name, kind, where they point, whether they have a secret'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and not __fish_seen_subcommand_from ls get create delete help" -f -a "get" -d 'Show a connection'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and not __fish_seen_subcommand_from ls get create delete help" -f -a "create" -d 'Create a connection (superusers)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and not __fish_seen_subcommand_from ls get create delete help" -f -a "delete" -d 'Delete connections by name (superusers)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and not __fish_seen_subcommand_from ls get create delete help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from ls" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from ls" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from ls" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from get" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from get" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from create" -l name -d 'Its name, as hooks, notifications and operations name it' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from create" -l kind -d '`slack`, `webhook`, `discord`, `mattermost`, `pagerduty`, `teams`, `git`, `registry`, `bucket`, `s3`, `gcs`, `wasb`, `volume_claim`, `host_path` or `custom`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from create" -l url -d 'Where a notifier sends (a webhook\'s URL; Slack\'s and the others\' URLs are credentials: give them with `--secret` instead)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from create" -s s -l schema -d 'More of its non-secret part, `KEY=VALUE` (repeatable; JSON values are read as JSON): `method=GET`, `channel=#ml`, `timeout=5`, `bucket=s3://data`…' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from create" -l secret -d 'Where its secret is read by the process that sends: `env:NAME` or `file:/path`. A webhook\'s is its signing key; PagerDuty\'s its service key; the others\' their URL; a JSON object may give `url`, `signing_key` and `service_key`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from create" -l description -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from create" -l tags -d 'Comma-separated tags' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from create" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from help" -f -a "ls" -d 'List the connections: name, kind, where they point, whether they have a secret'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from help" -f -a "get" -d 'Show a connection'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a connection (superusers)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete connections by name (superusers)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connections; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and not __fish_seen_subcommand_from ls get create delete help" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and not __fish_seen_subcommand_from ls get create delete help" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and not __fish_seen_subcommand_from ls get create delete help" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and not __fish_seen_subcommand_from ls get create delete help" -f -a "ls" -d 'List the connections: name, kind, where they point, whether they have a secret'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and not __fish_seen_subcommand_from ls get create delete help" -f -a "get" -d 'Show a connection'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and not __fish_seen_subcommand_from ls get create delete help" -f -a "create" -d 'Create a connection (superusers)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and not __fish_seen_subcommand_from ls get create delete help" -f -a "delete" -d 'Delete connections by name (superusers)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and not __fish_seen_subcommand_from ls get create delete help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from ls" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from ls" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from ls" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from get" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from get" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from create" -l name -d 'Its name, as hooks, notifications and operations name it' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from create" -l kind -d '`slack`, `webhook`, `discord`, `mattermost`, `pagerduty`, `teams`, `git`, `registry`, `bucket`, `s3`, `gcs`, `wasb`, `volume_claim`, `host_path` or `custom`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from create" -l url -d 'Where a notifier sends (a webhook\'s URL; Slack\'s and the others\' URLs are credentials: give them with `--secret` instead)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from create" -s s -l schema -d 'More of its non-secret part, `KEY=VALUE` (repeatable; JSON values are read as JSON): `method=GET`, `channel=#ml`, `timeout=5`, `bucket=s3://data`…' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from create" -l secret -d 'Where its secret is read by the process that sends: `env:NAME` or `file:/path`. A webhook\'s is its signing key; PagerDuty\'s its service key; the others\' their URL; a JSON object may give `url`, `signing_key` and `service_key`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from create" -l description -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from create" -l tags -d 'Comma-separated tags' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from create" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from help" -f -a "ls" -d 'List the connections: name, kind, where they point, whether they have a secret'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from help" -f -a "get" -d 'Show a connection'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a connection (superusers)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete connections by name (superusers)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand connection; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and not __fish_seen_subcommand_from ls create delete help" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and not __fish_seen_subcommand_from ls create delete help" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and not __fish_seen_subcommand_from ls create delete help" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and not __fish_seen_subcommand_from ls create delete help" -f -a "ls" -d 'List the queues with what waits and runs in them'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and not __fish_seen_subcommand_from ls create delete help" -f -a "create" -d 'Create a queue, or change one'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and not __fish_seen_subcommand_from ls create delete help" -f -a "delete" -d 'Delete a queue that holds no run'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and not __fish_seen_subcommand_from ls create delete help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and __fish_seen_subcommand_from ls" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and __fish_seen_subcommand_from ls" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and __fish_seen_subcommand_from ls" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and __fish_seen_subcommand_from create" -l concurrency -d 'At most this many of its runs at once (default: no limit)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and __fish_seen_subcommand_from create" -l priority -d 'Agents serving several queues claim from higher ones first' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and __fish_seen_subcommand_from create" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "ls" -d 'List the queues with what waits and runs in them'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a queue, or change one'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete a queue that holds no run'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and not __fish_seen_subcommand_from ls create delete help" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and not __fish_seen_subcommand_from ls create delete help" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and not __fish_seen_subcommand_from ls create delete help" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and not __fish_seen_subcommand_from ls create delete help" -f -a "ls" -d 'List the queues with what waits and runs in them'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and not __fish_seen_subcommand_from ls create delete help" -f -a "create" -d 'Create a queue, or change one'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and not __fish_seen_subcommand_from ls create delete help" -f -a "delete" -d 'Delete a queue that holds no run'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and not __fish_seen_subcommand_from ls create delete help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and __fish_seen_subcommand_from ls" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and __fish_seen_subcommand_from ls" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and __fish_seen_subcommand_from ls" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and __fish_seen_subcommand_from create" -l concurrency -d 'At most this many of its runs at once (default: no limit)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and __fish_seen_subcommand_from create" -l priority -d 'Agents serving several queues claim from higher ones first' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and __fish_seen_subcommand_from create" -s o -l output -d 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and __fish_seen_subcommand_from help" -f -a "ls" -d 'List the queues with what waits and runs in them'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a queue, or change one'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete a queue that holds no run'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand queues; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand port-forward" -s p -l port -d 'The local port' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand port-forward" -s n -l namespace -d 'The namespace of the deploy' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand port-forward" -s r -l release-name -d 'The release name of the deploy (`admin deploy`\'s)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand port-forward" -s s -l service -d 'The service: `gateway` or `api` (the server, the default), or a Service\'s name' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand port-forward" -l address -d 'The local address to listen on (also `-add`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand port-forward" -l context -d 'The kubeconfig context (default: the current one)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand port-forward" -s t -l deployment-type -d 'Accepted for upstream\'s scripts: the deploy is always Kubernetes' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand port-forward" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand port-forward" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand port-forward" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand server; and not __fish_seen_subcommand_from start help" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand server; and not __fish_seen_subcommand_from start help" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand server; and not __fish_seen_subcommand_from start help" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand server; and not __fish_seen_subcommand_from start help" -f -a "start" -d 'Serve the API (PostgreSQL with `--database-url`, else SQLite under `POLYAXON_HOME`)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand server; and not __fish_seen_subcommand_from start help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand server; and __fish_seen_subcommand_from start" -l database-url -d 'The database: `postgres://user:password@host/db`, or `sqlite:///path/polyaxon.db`. Default: SQLite in `$POLYAXON_HOME/polyaxon.db`' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand server; and __fish_seen_subcommand_from start" -l host -d 'The address to listen on' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand server; and __fish_seen_subcommand_from start" -s p -l port -d 'The port to listen on (0 picks a free one)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand server; and __fish_seen_subcommand_from start" -l artifacts-root -d 'Where runs\' files are kept. Default: `$POLYAXON_HOME/artifacts`' -r -F
complete -c polyaxon -n "__fish_polyaxon_using_subcommand server; and __fish_seen_subcommand_from start" -l artifacts-store -d 'An object store for runs\' files: `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix` (`wasb://container@account.blob.core.windows.net/prefix`), with each cloud\'s standard credentials (`AWS_*`, `GOOGLE_*`, `AZURE_*`). Checked at start. Logs and event files stay in `--artifacts-root` while the server takes them in' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand server; and __fish_seen_subcommand_from start" -l artifacts-store-option -d 'A setting of the store\'s client, `KEY=VALUE` (repeatable): `endpoint=http://minio:9000`, `allow_http=true`, `region=eu-west-1`, … (the `object_store` builders\' keys)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand server; and __fish_seen_subcommand_from start" -l connections -d 'Connections to create or update at start: a YAML list of `{name, kind, description, tags, schema, secret: env:NAME | file:/path}` (those created through the API are kept)' -r -F
complete -c polyaxon -n "__fish_polyaxon_using_subcommand server; and __fish_seen_subcommand_from start" -l k8s-service-host -d 'Where the services proxy reaches a Kubernetes run\'s Service: `{name}` and `{namespace}` are filled in (a server outside the cluster can point this at a tunnel)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand server; and __fish_seen_subcommand_from start" -l open -d 'Accept requests without a token, as the single user `default` (a private machine only)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand server; and __fish_seen_subcommand_from start" -l notify-allow-link-local -d 'Let notifications go to link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10), refused by default'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand server; and __fish_seen_subcommand_from start" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand server; and __fish_seen_subcommand_from start" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand server; and __fish_seen_subcommand_from start" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand server; and __fish_seen_subcommand_from help" -f -a "start" -d 'Serve the API (PostgreSQL with `--database-url`, else SQLite under `POLYAXON_HOME`)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand server; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand sidecar" -l dir -d 'The run\'s artifacts directory (default: `POLYAXON_RUN_ARTIFACTS_PATH`)' -r -F
complete -c polyaxon -n "__fish_polyaxon_using_subcommand sidecar" -l interval -d 'Seconds between passes' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand sidecar" -l exclude -d 'A top-level entry of the directory never sent (repeatable; default: `code`, which the init steps fetched)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand sidecar" -l final-timeout -d 'Seconds the last pass may take, with its retries, once told to stop (SIGTERM)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand sidecar" -s p -l project -d 'The run\'s project (default: from `POLYAXON_RUN_INSTANCE`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand sidecar" -l uid -d 'The run (default: from `POLYAXON_RUN_INSTANCE`)' -r
complete -c polyaxon -n "__fish_polyaxon_using_subcommand sidecar" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand sidecar" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand sidecar" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand generate-docs" -l out -d 'The repository\'s root: writes `completions/` and `man/` in it' -r -F
complete -c polyaxon -n "__fish_polyaxon_using_subcommand generate-docs" -s v -l verbose -d 'Print more detail about what happens'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand generate-docs" -s h -l help -d 'Print help'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand generate-docs" -s V -l version -d 'Print version'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "run" -d 'Run a polyaxonfile: check it, snapshot the code, start the job'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "check" -d 'Check polyaxonfiles: syntax, schema, params and templates'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "hub" -d 'The component hub: the components `hubRef` and `run --hub` find (list, print)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "project" -d 'Projects: create, list, show, change, delete'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "ops" -d 'Runs (operations): list, inspect, follow, stop, restart, download'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "logs" -d 'Show a run\'s logs (the last run used, or `--uid`), following it while it runs'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "config" -d 'Show, set and reset the CLI\'s configuration'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "login" -d 'Log in to a server (the embedded default needs no login)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "logout" -d 'Forget the credentials of the configured server'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "whoami" -d 'Show who you are on the configured server'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "token" -d 'Your personal tokens on the server: list, create, revoke'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "version" -d 'Show the CLI\'s version and the server\'s'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "init" -d 'Set the current project for this directory (kept in `./.polyaxon/`)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "dashboard" -d 'Open the web dashboard'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "completion" -d 'Print a shell completion script'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "admin" -d 'Deploy, upgrade and tear down the server on a Kubernetes cluster'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "agent" -d 'Agents: claim queued runs and run them (`agent start`), list them, show their queues'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "connections" -d 'Connections: notifiers (Slack, webhooks, …) and what operations name in `connections:`'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "queue" -d 'Queues runs wait in for agents: list, create or change, delete'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "port-forward" -d 'Forward the deployed server (or another Service) to a local port, until Ctrl-C'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "server" -d 'Run the API server'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "sidecar" -d 'Send a run\'s files to the server from beside its job (the Kubernetes executor puts it in each pod), every few seconds and once more when told to stop'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "generate-docs" -d 'Write the shell completions and man pages (for packagers; the repository keeps them)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and not __fish_seen_subcommand_from run check hub project ops logs config login logout whoami token version init dashboard completion admin agent connections queue port-forward server sidecar generate-docs help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from hub" -f -a "ls" -d 'List the components: name, tag, where each comes from, what it is'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from hub" -f -a "get" -d 'Print a component\'s polyaxonfile (`NAME` or `NAME:TAG`)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from project" -f -a "create" -d 'Create a project'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from project" -f -a "ls" -d 'List projects'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from project" -f -a "get" -d 'Show a project'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from project" -f -a "update" -d 'Change a project\'s name, description, tags or visibility'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from project" -f -a "delete" -d 'Delete a project with its runs and their files'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from project" -f -a "dashboard" -d 'Open a project in the web dashboard'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from ops" -f -a "ls" -d 'List a project\'s runs'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from ops" -f -a "get" -d 'Show a run'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from ops" -f -a "statuses" -d 'Show a run\'s status history, or follow it with `--watch`'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from ops" -f -a "notifications" -d 'Show a run\'s notifications and hooks: each delivery\'s state, tries and last error'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from ops" -f -a "logs" -d 'Show a run\'s logs, following it while it runs'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from ops" -f -a "metrics" -d 'Show a run\'s metrics: last values, or the series (`--plot` draws them)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from ops" -f -a "artifacts" -d 'Download a run\'s files'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from ops" -f -a "code" -d 'Show where a run\'s code came from, or write it out (`--checkout DIR`)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from ops" -f -a "stop" -d 'Stop a run'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from ops" -f -a "skip" -d 'Skip a run that has not started (an operation of a DAG)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from ops" -f -a "delete" -d 'Delete a run and its files'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from ops" -f -a "restart" -d 'Run a run again as a new run (`--copy` starts from a copy of its files)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from ops" -f -a "resume" -d 'Continue a finished run in place, with its files'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from ops" -f -a "update" -d 'Change a run\'s name, description or tags'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from ops" -f -a "approve" -d 'Approve a run waiting for approval'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from ops" -f -a "dashboard" -d 'Open a run in the web dashboard'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from ops" -f -a "service" -d 'Reach a running service: its address here, or its ports forwarded from the cluster'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from ops" -f -a "execute" -d 'Execute a created run on this machine, in the foreground (what `polyaxon run` starts in the background)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "show" -d 'Show the configuration and where it comes from'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "get" -d 'Print configuration values, one per line'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "set" -d 'Change configuration values'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "purge" -d 'Reset the configuration, credentials and caches (never the runs kept here)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "ls" -d 'List your tokens (never their secrets): id, name, created, expiry'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "create" -d 'Create a token; its secret is printed this once'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "revoke" -d 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from admin" -f -a "deploy" -d 'Deploy the server, its database and the executor\'s RBAC to a cluster'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from admin" -f -a "upgrade" -d 'Apply a changed config to a deploy (its generated secrets are kept)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from admin" -f -a "teardown" -d 'Remove a deploy; the database\'s volume stays unless `--delete-volumes`'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from agent" -f -a "start" -d 'Claim queued runs and run them here, until SIGTERM or Ctrl-C (then drain)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from agent" -f -a "ls" -d 'List the agents: name, version, executor, queues, load, state, last seen'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from agent" -f -a "status" -d 'Show each queue: waiting and running runs, concurrency, the agents serving it'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from connections" -f -a "ls" -d 'List the connections: name, kind, where they point, whether they have a secret'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from connections" -f -a "get" -d 'Show a connection'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from connections" -f -a "create" -d 'Create a connection (superusers)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from connections" -f -a "delete" -d 'Delete connections by name (superusers)'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "ls" -d 'List the queues with what waits and runs in them'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "create" -d 'Create a queue, or change one'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "delete" -d 'Delete a queue that holds no run'
complete -c polyaxon -n "__fish_polyaxon_using_subcommand help; and __fish_seen_subcommand_from server" -f -a "start" -d 'Serve the API (PostgreSQL with `--database-url`, else SQLite under `POLYAXON_HOME`)'
