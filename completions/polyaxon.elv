
use builtin;
use str;

set edit:completion:arg-completer[polyaxon] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'polyaxon'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'polyaxon'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand run 'Run a polyaxonfile: check it, snapshot the code, start the job'
            cand check 'Check polyaxonfiles: syntax, schema, params and templates'
            cand hub 'The component hub: the components `hubRef` and `run --hub` find (list, print)'
            cand project 'Projects: create, list, show, change, delete'
            cand projects 'Projects: create, list, show, change, delete'
            cand ops 'Runs (operations): list, inspect, follow, stop, restart, download'
            cand logs 'Show a run''s logs (the last run used, or `--uid`), following it while it runs'
            cand config 'Show, set and reset the CLI''s configuration'
            cand login 'Log in to a server (the embedded default needs no login)'
            cand logout 'Forget the credentials of the configured server'
            cand whoami 'Show who you are on the configured server'
            cand token 'Your personal tokens on the server: list, create, revoke'
            cand tokens 'Your personal tokens on the server: list, create, revoke'
            cand version 'Show the CLI''s version and the server''s'
            cand init 'Set the current project for this directory (kept in `./.polyaxon/`)'
            cand dashboard 'Open the web dashboard'
            cand completion 'Print a shell completion script'
            cand admin 'Deploy, upgrade and tear down the server on a Kubernetes cluster'
            cand agent 'Agents: claim queued runs and run them (`agent start`), list them, show their queues'
            cand connections 'Connections: notifiers (Slack, webhooks, …) and what operations name in `connections:`'
            cand connection 'Connections: notifiers (Slack, webhooks, …) and what operations name in `connections:`'
            cand queue 'Queues runs wait in for agents: list, create or change, delete'
            cand queues 'Queues runs wait in for agents: list, create or change, delete'
            cand port-forward 'Forward the deployed server (or another Service) to a local port, until Ctrl-C'
            cand server 'Run the API server'
            cand sidecar 'Send a run''s files to the server from beside its job (the Kubernetes executor puts it in each pod), every few seconds and once more when told to stop'
            cand generate-docs 'Write the shell completions and man pages (for packagers; the repository keeps them)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;run'= {
            cand -f 'The polyaxonfile(s); later files patch earlier ones. Default: `polyaxonfile.yml` and the other names upstream looks for, here'
            cand --file 'The polyaxonfile(s); later files patch earlier ones. Default: `polyaxonfile.yml` and the other names upstream looks for, here'
            cand --hub 'Run a component of the hub, `NAME` or `NAME:TAG` (`polyaxon hub ls` lists them): as an operation with `hubRef: NAME[:TAG]`; `-f` files after it patch it'
            cand -P 'A value for an input: `-P lr=0.01` (repeatable)'
            cand --param 'A value for an input: `-P lr=0.01` (repeatable)'
            cand --hparam 'A searched param, `NAME=KIND:VALUE`: `-HP lr=choice:[0.1,0.01]`, `-HP bs=range:16:128:16`, `-HP lr=loguniform:-9:-2` (any matrix param kind); makes the run a search (repeatable)'
            cand --matrix-kind 'The search''s kind with `-HP`: grid (the default), random, mapping or hyperband'
            cand --matrix-concurrency 'Trials at once with `-HP` (default 1)'
            cand --matrix-num-runs 'How many trials with `-HP` (random: required; grid: a cap)'
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the directory''s, else `default`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the directory''s, else `default`)'
            cand -n 'A name for the run'
            cand --name 'A name for the run'
            cand --tags 'Tags, comma-separated'
            cand --description 'A description'
            cand --executor 'Where the job runs: `process` (this machine, the default), `docker`, or `kubernetes` (`k8s`: the cluster of the kubeconfig''s context; `POLYAXON_K8S_CONTEXT`, `POLYAXON_K8S_NAMESPACE` choose). Default: POLYAXON_EXECUTOR, else `config set --executor`'
            cand --exc 'Where the job runs: `process` (this machine, the default), `docker`, or `kubernetes` (`k8s`: the cluster of the kubeconfig''s context; `POLYAXON_K8S_CONTEXT`, `POLYAXON_K8S_NAMESPACE` choose). Default: POLYAXON_EXECUTOR, else `config set --executor`'
            cand --presets 'Named presets to apply, comma-separated'
            cand --upload-from 'The directory to upload (implies `-u`; default: the directory the code runs from)'
            cand --u-from 'The directory to upload (implies `-u`; default: the directory the code runs from)'
            cand --upload-to 'Where in the run''s artifacts the upload goes (implies `-u`; `/` for the root)'
            cand --u-to 'Where in the run''s artifacts the upload goes (implies `-u`; `/` for the root)'
            cand --queue 'The queue the run waits in for an agent (upstream''s `agent/queue` names work; default: the spec''s `queue`, else the project''s, else `default`)'
            cand --priority 'Its priority in the queue: higher runs are claimed first (default 0)'
            cand --approved '`--approved false` holds the run until `polyaxon ops approve` (as `isApproved: false`)'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -w 'Follow the run''s statuses until it ends'
            cand --watch 'Follow the run''s statuses until it ends'
            cand -l 'Follow the run''s logs until it ends (Ctrl-C stops the run)'
            cand --logs 'Follow the run''s logs until it ends (Ctrl-C stops the run)'
            cand --log 'Follow the run''s logs until it ends (Ctrl-C stops the run)'
            cand --dry-run 'Print the Kubernetes manifests the run becomes (`-o yaml`, the default, or `-o json`) instead of running it. Needs no cluster'
            cand --stdout-metrics 'Read `name=value` lines the job prints as metrics (also: `POLYAXON_STDOUT_METRICS=true` in the container''s env)'
            cand --cache 'Reuse the results of a run with the same component, inputs and code that succeeded, instead of running again (default: when the spec has a `cache` section, and for a DAG''s operations)'
            cand --nocache 'Run even when an equal run succeeded before (the cache off)'
            cand -u 'Upload the code to the run''s artifacts (`uploads/`) before it starts: in a git repository the files of the run''s code snapshot, elsewhere the directory''s files less what `.polyaxonignore` excludes. The job finds them under its artifacts path'
            cand --upload 'Upload the code to the run''s artifacts (`uploads/`) before it starts: in a git repository the files of the run''s code snapshot, elsewhere the directory''s files less what `.polyaxonignore` excludes. The job finds them under its artifacts path'
            cand --local 'Run it on this machine even when an agent serves its queue'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;check'= {
            cand -f 'The polyaxonfile(s); later files patch earlier ones (presets, overrides)'
            cand --file 'The polyaxonfile(s); later files patch earlier ones (presets, overrides)'
            cand -P 'A value for an input: `-P lr=0.01` (repeatable)'
            cand --param 'A value for an input: `-P lr=0.01` (repeatable)'
            cand --presets 'Named presets to apply, comma-separated'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -l 'Check the specification only: no values needed, templates not rendered'
            cand --lint 'Check the specification only: no values needed, templates not rendered'
            cand --upgrade 'Print the file as a version 1.1 polyaxonfile (upgrading v0.6 files)'
            cand --schema 'Print the JSON Schema of polyaxonfiles (for editors) and exit'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;hub'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand ls 'List the components: name, tag, where each comes from, what it is'
            cand get 'Print a component''s polyaxonfile (`NAME` or `NAME:TAG`)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;hub;ls'= {
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;hub;get'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;hub;help'= {
            cand ls 'List the components: name, tag, where each comes from, what it is'
            cand get 'Print a component''s polyaxonfile (`NAME` or `NAME:TAG`)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;hub;help;ls'= {
        }
        &'polyaxon;hub;help;get'= {
        }
        &'polyaxon;hub;help;help'= {
        }
        &'polyaxon;project'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand create 'Create a project'
            cand ls 'List projects'
            cand get 'Show a project'
            cand update 'Change a project''s name, description, tags or visibility'
            cand delete 'Delete a project with its runs and their files'
            cand dashboard 'Open a project in the web dashboard'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;projects'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand create 'Create a project'
            cand ls 'List projects'
            cand get 'Show a project'
            cand update 'Change a project''s name, description, tags or visibility'
            cand delete 'Delete a project with its runs and their files'
            cand dashboard 'Open a project in the web dashboard'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;project;create'= {
            cand -n 'The project''s name, `NAME` or `OWNER/NAME`'
            cand --name 'The project''s name, `NAME` or `OWNER/NAME`'
            cand --description 'What the project is about'
            cand --tags 'Tags, comma-separated'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --public 'Let everyone on the server see it'
            cand --init 'Also make it this directory''s current project (as `polyaxon init`)'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;projects;create'= {
            cand -n 'The project''s name, `NAME` or `OWNER/NAME`'
            cand --name 'The project''s name, `NAME` or `OWNER/NAME`'
            cand --description 'What the project is about'
            cand --tags 'Tags, comma-separated'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --public 'Let everyone on the server see it'
            cand --init 'Also make it this directory''s current project (as `polyaxon init`)'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;project;ls'= {
            cand --owner 'Whose projects (default: yours)'
            cand -q 'Only projects matching this query, e.g. `tags: vision, name: %mnist%`'
            cand --query 'Only projects matching this query, e.g. `tags: vision, name: %mnist%`'
            cand -s 'Order, e.g. `-created_at` or `name`'
            cand --sort 'Order, e.g. `-created_at` or `name`'
            cand -l 'At most this many'
            cand --limit 'At most this many'
            cand --offset 'Skip this many'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;projects;ls'= {
            cand --owner 'Whose projects (default: yours)'
            cand -q 'Only projects matching this query, e.g. `tags: vision, name: %mnist%`'
            cand --query 'Only projects matching this query, e.g. `tags: vision, name: %mnist%`'
            cand -s 'Order, e.g. `-created_at` or `name`'
            cand --sort 'Order, e.g. `-created_at` or `name`'
            cand -l 'At most this many'
            cand --limit 'At most this many'
            cand --offset 'Skip this many'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;project;get'= {
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;projects;get'= {
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;project;update'= {
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand -n 'A new name'
            cand --name 'A new name'
            cand --description 'A new description'
            cand --tags 'New tags, comma-separated (replacing the old ones)'
            cand --private '`true` to make it private, `false` to make it public'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;projects;update'= {
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand -n 'A new name'
            cand --name 'A new name'
            cand --description 'A new description'
            cand --tags 'New tags, comma-separated (replacing the old ones)'
            cand --private '`true` to make it private, `false` to make it public'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;project;delete'= {
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;projects;delete'= {
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;project;dashboard'= {
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand -y 'Open the browser without asking'
            cand --yes 'Open the browser without asking'
            cand --url 'Print the address instead of opening a browser'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;projects;dashboard'= {
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand -y 'Open the browser without asking'
            cand --yes 'Open the browser without asking'
            cand --url 'Print the address instead of opening a browser'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;project;help'= {
            cand create 'Create a project'
            cand ls 'List projects'
            cand get 'Show a project'
            cand update 'Change a project''s name, description, tags or visibility'
            cand delete 'Delete a project with its runs and their files'
            cand dashboard 'Open a project in the web dashboard'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;project;help;create'= {
        }
        &'polyaxon;project;help;ls'= {
        }
        &'polyaxon;project;help;get'= {
        }
        &'polyaxon;project;help;update'= {
        }
        &'polyaxon;project;help;delete'= {
        }
        &'polyaxon;project;help;dashboard'= {
        }
        &'polyaxon;project;help;help'= {
        }
        &'polyaxon;projects;help'= {
            cand create 'Create a project'
            cand ls 'List projects'
            cand get 'Show a project'
            cand update 'Change a project''s name, description, tags or visibility'
            cand delete 'Delete a project with its runs and their files'
            cand dashboard 'Open a project in the web dashboard'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;projects;help;create'= {
        }
        &'polyaxon;projects;help;ls'= {
        }
        &'polyaxon;projects;help;get'= {
        }
        &'polyaxon;projects;help;update'= {
        }
        &'polyaxon;projects;help;delete'= {
        }
        &'polyaxon;projects;help;dashboard'= {
        }
        &'polyaxon;projects;help;help'= {
        }
        &'polyaxon;ops'= {
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --uid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --uuid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand ls 'List a project''s runs'
            cand get 'Show a run'
            cand statuses 'Show a run''s status history, or follow it with `--watch`'
            cand notifications 'Show a run''s notifications and hooks: each delivery''s state, tries and last error'
            cand logs 'Show a run''s logs, following it while it runs'
            cand metrics 'Show a run''s metrics: last values, or the series (`--plot` draws them)'
            cand artifacts 'Download a run''s files'
            cand code 'Show where a run''s code came from, or write it out (`--checkout DIR`)'
            cand stop 'Stop a run'
            cand skip 'Skip a run that has not started (an operation of a DAG)'
            cand delete 'Delete a run and its files'
            cand restart 'Run a run again as a new run (`--copy` starts from a copy of its files)'
            cand resume 'Continue a finished run in place, with its files'
            cand update 'Change a run''s name, description or tags'
            cand approve 'Approve a run waiting for approval'
            cand dashboard 'Open a run in the web dashboard'
            cand service 'Reach a running service: its address here, or its ports forwarded from the cluster'
            cand execute 'Execute a created run on this machine, in the foreground (what `polyaxon run` starts in the background)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;ops;ls'= {
            cand -q 'Only runs matching this query, e.g. `status: running|failed, metrics.loss: <0.2`'
            cand --query 'Only runs matching this query, e.g. `status: running|failed, metrics.loss: <0.2`'
            cand -s 'Order, e.g. `-created_at` or `metrics.loss` (default: last changed first)'
            cand --sort 'Order, e.g. `-created_at` or `metrics.loss` (default: last changed first)'
            cand -l 'At most this many'
            cand --limit 'At most this many'
            cand --offset 'Skip this many (also `-off`)'
            cand -c 'Columns to show, comma-separated: `uuid, name, status, kind, user, tags, created, started, finished, duration, description, params.NAME, metrics.NAME, …`'
            cand --columns 'Columns to show, comma-separated: `uuid, name, status, kind, user, tags, created, started, finished, duration, description, params.NAME, metrics.NAME, …`'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --uid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --uuid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --io 'Show inputs and outputs (params and last metric values) as columns'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;ops;get'= {
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --uid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --uuid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;ops;statuses'= {
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --uid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --uuid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand -w 'Keep printing new statuses until the run ends'
            cand --watch 'Keep printing new statuses until the run ends'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;ops;notifications'= {
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --uid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --uuid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;ops;logs'= {
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --uid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --uuid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --no-follow 'Print what is there and stop, even while the run goes on (also `-nf`)'
            cand --hide-time 'Without timestamps'
            cand -a 'With the node, pod and container of each line'
            cand --all-info 'With the node, pod and container of each line'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;ops;metrics'= {
            cand --names 'Only these metrics, comma-separated'
            cand --sample 'At most this many points per series (keeping its shape); default: 1,000, or the chart''s resolution with `--plot`'
            cand --height 'Chart height in lines (with `--plot`)'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --uid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --uuid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --plot 'Draw the series as charts in the terminal'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;ops;artifacts'= {
            cand -f 'A file to download, relative to the run''s directory (repeatable)'
            cand --file 'A file to download, relative to the run''s directory (repeatable)'
            cand -d 'A directory to download (repeatable)'
            cand --dir 'A directory to download (repeatable)'
            cand --lineage-name 'The artifacts of the run''s lineage with this name (repeatable): their paths are downloaded (`polyaxon.tracking`''s `log_model_ref`, `log_artifact_ref`, …)'
            cand --lineage-kind 'The artifacts of the run''s lineage of this kind (`model`, `data`, `file`, `dir`, `tensorboard`, …; repeatable)'
            cand --path 'Where to put them (default: `./<run uuid>`)'
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --uid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --uuid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --no-untar 'Keep directories as `.tar.gz` archives instead of unpacking them'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;ops;code'= {
            cand --checkout 'Write the run''s code into this directory (new or empty)'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --uid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --uuid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;ops;stop'= {
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --uid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --uuid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;ops;skip'= {
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --uid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --uuid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;ops;delete'= {
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --uid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --uuid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;ops;restart'= {
            cand --name 'A name for the new run'
            cand --tags 'Tags for the new run, comma-separated'
            cand --description 'A description for the new run'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --uid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --uuid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand -c 'Start from a copy of the run''s files (outputs, checkpoints) instead of none'
            cand --copy 'Start from a copy of the run''s files (outputs, checkpoints) instead of none'
            cand --downstream 'With an operation of a DAG: run its DAG again from this operation — it and everything that depends on it run again, the other operations'' results are reused'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;ops;resume'= {
            cand --name 'A new name for the run'
            cand --tags 'New tags, comma-separated'
            cand --description 'A new description'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --uid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --uuid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;ops;update'= {
            cand -n 'A new name'
            cand --name 'A new name'
            cand --description 'A new description'
            cand --tags 'Tags to add, comma-separated'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --uid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --uuid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;ops;approve'= {
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --uid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --uuid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;ops;dashboard'= {
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --uid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --uuid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand -y 'Open the browser without asking'
            cand --yes 'Open the browser without asking'
            cand --url 'Print the address instead of opening a browser'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;ops;service'= {
            cand --port 'The local port of a forwarded service (default: its own port when free, else any)'
            cand --address 'The local address a forwarded service listens on (also `-add`)'
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --uid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --uuid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand -y 'Open the browser without asking'
            cand --yes 'Open the browser without asking'
            cand --url 'Print the address instead of opening a browser'
            cand --external 'Accepted for upstream''s scripts: services are reached directly or forwarded'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;ops;execute'= {
            cand --executor 'Where the job runs: `process` (this machine), `docker` or `kubernetes` (`k8s`)'
            cand --exc 'Where the job runs: `process` (this machine), `docker` or `kubernetes` (`k8s`)'
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --uid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --uuid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --run-from-stdin 'Wait for the run on standard input (`OWNER/PROJECT UUID`), the store opened meanwhile; end-of-file exits quietly (what `polyaxon run` uses)'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;ops;help'= {
            cand ls 'List a project''s runs'
            cand get 'Show a run'
            cand statuses 'Show a run''s status history, or follow it with `--watch`'
            cand notifications 'Show a run''s notifications and hooks: each delivery''s state, tries and last error'
            cand logs 'Show a run''s logs, following it while it runs'
            cand metrics 'Show a run''s metrics: last values, or the series (`--plot` draws them)'
            cand artifacts 'Download a run''s files'
            cand code 'Show where a run''s code came from, or write it out (`--checkout DIR`)'
            cand stop 'Stop a run'
            cand skip 'Skip a run that has not started (an operation of a DAG)'
            cand delete 'Delete a run and its files'
            cand restart 'Run a run again as a new run (`--copy` starts from a copy of its files)'
            cand resume 'Continue a finished run in place, with its files'
            cand update 'Change a run''s name, description or tags'
            cand approve 'Approve a run waiting for approval'
            cand dashboard 'Open a run in the web dashboard'
            cand service 'Reach a running service: its address here, or its ports forwarded from the cluster'
            cand execute 'Execute a created run on this machine, in the foreground (what `polyaxon run` starts in the background)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;ops;help;ls'= {
        }
        &'polyaxon;ops;help;get'= {
        }
        &'polyaxon;ops;help;statuses'= {
        }
        &'polyaxon;ops;help;notifications'= {
        }
        &'polyaxon;ops;help;logs'= {
        }
        &'polyaxon;ops;help;metrics'= {
        }
        &'polyaxon;ops;help;artifacts'= {
        }
        &'polyaxon;ops;help;code'= {
        }
        &'polyaxon;ops;help;stop'= {
        }
        &'polyaxon;ops;help;skip'= {
        }
        &'polyaxon;ops;help;delete'= {
        }
        &'polyaxon;ops;help;restart'= {
        }
        &'polyaxon;ops;help;resume'= {
        }
        &'polyaxon;ops;help;update'= {
        }
        &'polyaxon;ops;help;approve'= {
        }
        &'polyaxon;ops;help;dashboard'= {
        }
        &'polyaxon;ops;help;service'= {
        }
        &'polyaxon;ops;help;execute'= {
        }
        &'polyaxon;ops;help;help'= {
        }
        &'polyaxon;logs'= {
            cand -p 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --project 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)'
            cand --uid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --uuid 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`'
            cand --no-follow 'Print what is there and stop, even while the run goes on (also `-nf`)'
            cand --hide-time 'Without timestamps'
            cand -a 'With the node, pod and container of each line'
            cand --all-info 'With the node, pod and container of each line'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;config'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand show 'Show the configuration and where it comes from'
            cand get 'Print configuration values, one per line'
            cand set 'Change configuration values'
            cand purge 'Reset the configuration, credentials and caches (never the runs kept here)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;config;show'= {
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;config;get'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;config;set'= {
            cand --host 'The server, e.g. `http://localhost:8000`; `""` goes back to the embedded store'
            cand --verify-ssl 'Whether to check the server''s TLS certificate'
            cand --timeout 'Seconds before a call to the server gives up'
            cand --owner 'The owner of projects named without one (default: you)'
            cand --no-api 'Make no calls to the server (kept for upstream''s scripts)'
            cand --debug 'Print more detail about calls'
            cand --home 'Keep the CLI''s files (and the embedded store) in this directory from now on'
            cand --executor 'The executor of `polyaxon run` without `--executor`: `process`, `docker` or `kubernetes` (`k8s`); `""` goes back to `process`'
            cand --disable-errors-reporting 'Accepted for upstream''s scripts; nothing is ever reported'
            cand --no-purge 'Keep the cached user when the host changes'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;config;purge'= {
            cand --cache-only 'Only the caches (current project, last run, user), not the configuration'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;config;help'= {
            cand show 'Show the configuration and where it comes from'
            cand get 'Print configuration values, one per line'
            cand set 'Change configuration values'
            cand purge 'Reset the configuration, credentials and caches (never the runs kept here)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;config;help;show'= {
        }
        &'polyaxon;config;help;get'= {
        }
        &'polyaxon;config;help;set'= {
        }
        &'polyaxon;config;help;purge'= {
        }
        &'polyaxon;config;help;help'= {
        }
        &'polyaxon;login'= {
            cand -t 'An API token (instead of a username and password)'
            cand --token 'An API token (instead of a username and password)'
            cand -u 'Your username (asked for at a terminal when not given)'
            cand --username 'Your username (asked for at a terminal when not given)'
            cand -p 'Your password (asked for at a terminal when not given; visible to other processes here, so prefer the prompt or `--password-stdin`)'
            cand --password 'Your password (asked for at a terminal when not given; visible to other processes here, so prefer the prompt or `--password-stdin`)'
            cand --password-stdin 'Read the password from standard input'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;logout'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;whoami'= {
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;token'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand ls 'List your tokens (never their secrets): id, name, created, expiry'
            cand create 'Create a token; its secret is printed this once'
            cand revoke 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once'
            cand delete 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;tokens'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand ls 'List your tokens (never their secrets): id, name, created, expiry'
            cand create 'Create a token; its secret is printed this once'
            cand revoke 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once'
            cand delete 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;token;ls'= {
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;tokens;ls'= {
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;token;create'= {
            cand --name 'A name to tell it by (what it is for: `ci`, `laptop`, …)'
            cand --expiration 'How long it lasts: seconds, or with a unit (`90m`, `12h`, `30d`); default: until revoked'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;tokens;create'= {
            cand --name 'A name to tell it by (what it is for: `ci`, `laptop`, …)'
            cand --expiration 'How long it lasts: seconds, or with a unit (`90m`, `12h`, `30d`); default: until revoked'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;token;revoke'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;token;delete'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;tokens;revoke'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;tokens;delete'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;token;help'= {
            cand ls 'List your tokens (never their secrets): id, name, created, expiry'
            cand create 'Create a token; its secret is printed this once'
            cand revoke 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;token;help;ls'= {
        }
        &'polyaxon;token;help;create'= {
        }
        &'polyaxon;token;help;revoke'= {
        }
        &'polyaxon;token;help;help'= {
        }
        &'polyaxon;tokens;help'= {
            cand ls 'List your tokens (never their secrets): id, name, created, expiry'
            cand create 'Create a token; its secret is printed this once'
            cand revoke 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;tokens;help;ls'= {
        }
        &'polyaxon;tokens;help;create'= {
        }
        &'polyaxon;tokens;help;revoke'= {
        }
        &'polyaxon;tokens;help;help'= {
        }
        &'polyaxon;version'= {
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --check 'Also check that the server''s version works with this CLI'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;init'= {
            cand -p 'The project, `NAME` or `OWNER/NAME`'
            cand --project 'The project, `NAME` or `OWNER/NAME`'
            cand --polyaxonfile 'Also write a starter `polyaxonfile.yml` (never over an existing one)'
            cand --polyaxonignore 'Also write a `.polyaxonignore` (files left out of code snapshots)'
            cand -y 'Answer yes to questions (create a missing project, replace another one set here)'
            cand --yes 'Answer yes to questions (create a missing project, replace another one set here)'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;dashboard'= {
            cand -y 'Open the browser without asking'
            cand --yes 'Open the browser without asking'
            cand --url 'Print the address instead of opening a browser'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;completion'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;admin'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand deploy 'Deploy the server, its database and the executor''s RBAC to a cluster'
            cand upgrade 'Apply a changed config to a deploy (its generated secrets are kept)'
            cand teardown 'Remove a deploy; the database''s volume stays unless `--delete-volumes`'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;admin;deploy'= {
            cand -f 'The deployment config (upstream''s keys where they apply; see the README)'
            cand --file 'The deployment config (upstream''s keys where they apply; see the README)'
            cand --context 'The kubeconfig context (default: the current one)'
            cand -t 'Accepted for upstream''s scripts: the deploy is always Kubernetes manifests'
            cand --deployment-type 'Accepted for upstream''s scripts: the deploy is always Kubernetes manifests'
            cand --manager-path 'Accepted for upstream''s scripts (there is no chart)'
            cand --timeout 'How long to wait for the rollout, in seconds'
            cand -o '`yaml` or `json` (with `--dry-run`)'
            cand --output '`yaml` or `json` (with `--dry-run`)'
            cand --check 'Check the config and the cluster''s access; change nothing'
            cand --dry-run 'Print the manifests (`-o yaml`, the default, or `-o json`); change nothing'
            cand --show-secrets 'With `--dry-run`: print secrets'' values too'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;admin;upgrade'= {
            cand -f 'The deployment config (upstream''s keys where they apply; see the README)'
            cand --file 'The deployment config (upstream''s keys where they apply; see the README)'
            cand --context 'The kubeconfig context (default: the current one)'
            cand -t 'Accepted for upstream''s scripts: the deploy is always Kubernetes manifests'
            cand --deployment-type 'Accepted for upstream''s scripts: the deploy is always Kubernetes manifests'
            cand --manager-path 'Accepted for upstream''s scripts (there is no chart)'
            cand --timeout 'How long to wait for the rollout, in seconds'
            cand -o '`yaml` or `json` (with `--dry-run`)'
            cand --output '`yaml` or `json` (with `--dry-run`)'
            cand --check 'Check the config and the cluster''s access; change nothing'
            cand --dry-run 'Print the manifests (`-o yaml`, the default, or `-o json`); change nothing'
            cand --show-secrets 'With `--dry-run`: print secrets'' values too'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;admin;teardown'= {
            cand -f 'The deployment config (upstream''s keys where they apply; see the README)'
            cand --file 'The deployment config (upstream''s keys where they apply; see the README)'
            cand --context 'The kubeconfig context (default: the current one)'
            cand -t 'Accepted for upstream''s scripts: the deploy is always Kubernetes manifests'
            cand --deployment-type 'Accepted for upstream''s scripts: the deploy is always Kubernetes manifests'
            cand --manager-path 'Accepted for upstream''s scripts (there is no chart)'
            cand --delete-volumes 'Also delete the database''s volume, the secrets and the namespace (data is lost)'
            cand -y 'Do not ask'
            cand --yes 'Do not ask'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;admin;help'= {
            cand deploy 'Deploy the server, its database and the executor''s RBAC to a cluster'
            cand upgrade 'Apply a changed config to a deploy (its generated secrets are kept)'
            cand teardown 'Remove a deploy; the database''s volume stays unless `--delete-volumes`'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;admin;help;deploy'= {
        }
        &'polyaxon;admin;help;upgrade'= {
        }
        &'polyaxon;admin;help;teardown'= {
        }
        &'polyaxon;admin;help;help'= {
        }
        &'polyaxon;agent'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand start 'Claim queued runs and run them here, until SIGTERM or Ctrl-C (then drain)'
            cand ls 'List the agents: name, version, executor, queues, load, state, last seen'
            cand status 'Show each queue: waiting and running runs, concurrency, the agents serving it'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;agent;start'= {
            cand --queue 'The queues to serve, comma-separated (upstream''s `agent/queue` names work)'
            cand --executor 'Where runs run: `process`, `docker` or `kubernetes` (default: as `polyaxon run`)'
            cand --exc 'Where runs run: `process`, `docker` or `kubernetes` (default: as `polyaxon run`)'
            cand --max-concurrency 'Runs at once'
            cand --name 'The agent''s name (default: HOST-PID); one agent of a name runs at a time'
            cand --lease 'How long a claim lasts without a heartbeat, in seconds: an agent killed outright loses its runs to the others after this long'
            cand --handoff 'On SIGTERM, stop the running runs and queue them again for another agent instead of letting them finish'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;agent;ls'= {
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;agent;status'= {
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;agent;help'= {
            cand start 'Claim queued runs and run them here, until SIGTERM or Ctrl-C (then drain)'
            cand ls 'List the agents: name, version, executor, queues, load, state, last seen'
            cand status 'Show each queue: waiting and running runs, concurrency, the agents serving it'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;agent;help;start'= {
        }
        &'polyaxon;agent;help;ls'= {
        }
        &'polyaxon;agent;help;status'= {
        }
        &'polyaxon;agent;help;help'= {
        }
        &'polyaxon;connections'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand ls 'List the connections: name, kind, where they point, whether they have a secret'
            cand get 'Show a connection'
            cand create 'Create a connection (superusers)'
            cand delete 'Delete connections by name (superusers)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;connection'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand ls 'List the connections: name, kind, where they point, whether they have a secret'
            cand get 'Show a connection'
            cand create 'Create a connection (superusers)'
            cand delete 'Delete connections by name (superusers)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;connections;ls'= {
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;connection;ls'= {
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;connections;get'= {
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;connection;get'= {
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;connections;create'= {
            cand --name 'Its name, as hooks, notifications and operations name it'
            cand --kind '`slack`, `webhook`, `discord`, `mattermost`, `pagerduty`, `teams`, `git`, `registry`, `bucket`, `s3`, `gcs`, `wasb`, `volume_claim`, `host_path` or `custom`'
            cand --url 'Where a notifier sends (a webhook''s URL; Slack''s and the others'' URLs are credentials: give them with `--secret` instead)'
            cand -s 'More of its non-secret part, `KEY=VALUE` (repeatable; JSON values are read as JSON): `method=GET`, `channel=#ml`, `timeout=5`, `bucket=s3://data`…'
            cand --schema 'More of its non-secret part, `KEY=VALUE` (repeatable; JSON values are read as JSON): `method=GET`, `channel=#ml`, `timeout=5`, `bucket=s3://data`…'
            cand --secret 'Where its secret is read by the process that sends: `env:NAME` or `file:/path`. A webhook''s is its signing key; PagerDuty''s its service key; the others'' their URL; a JSON object may give `url`, `signing_key` and `service_key`'
            cand --description 'description'
            cand --tags 'Comma-separated tags'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;connection;create'= {
            cand --name 'Its name, as hooks, notifications and operations name it'
            cand --kind '`slack`, `webhook`, `discord`, `mattermost`, `pagerduty`, `teams`, `git`, `registry`, `bucket`, `s3`, `gcs`, `wasb`, `volume_claim`, `host_path` or `custom`'
            cand --url 'Where a notifier sends (a webhook''s URL; Slack''s and the others'' URLs are credentials: give them with `--secret` instead)'
            cand -s 'More of its non-secret part, `KEY=VALUE` (repeatable; JSON values are read as JSON): `method=GET`, `channel=#ml`, `timeout=5`, `bucket=s3://data`…'
            cand --schema 'More of its non-secret part, `KEY=VALUE` (repeatable; JSON values are read as JSON): `method=GET`, `channel=#ml`, `timeout=5`, `bucket=s3://data`…'
            cand --secret 'Where its secret is read by the process that sends: `env:NAME` or `file:/path`. A webhook''s is its signing key; PagerDuty''s its service key; the others'' their URL; a JSON object may give `url`, `signing_key` and `service_key`'
            cand --description 'description'
            cand --tags 'Comma-separated tags'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;connections;delete'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;connection;delete'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;connections;help'= {
            cand ls 'List the connections: name, kind, where they point, whether they have a secret'
            cand get 'Show a connection'
            cand create 'Create a connection (superusers)'
            cand delete 'Delete connections by name (superusers)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;connections;help;ls'= {
        }
        &'polyaxon;connections;help;get'= {
        }
        &'polyaxon;connections;help;create'= {
        }
        &'polyaxon;connections;help;delete'= {
        }
        &'polyaxon;connections;help;help'= {
        }
        &'polyaxon;connection;help'= {
            cand ls 'List the connections: name, kind, where they point, whether they have a secret'
            cand get 'Show a connection'
            cand create 'Create a connection (superusers)'
            cand delete 'Delete connections by name (superusers)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;connection;help;ls'= {
        }
        &'polyaxon;connection;help;get'= {
        }
        &'polyaxon;connection;help;create'= {
        }
        &'polyaxon;connection;help;delete'= {
        }
        &'polyaxon;connection;help;help'= {
        }
        &'polyaxon;queue'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand ls 'List the queues with what waits and runs in them'
            cand create 'Create a queue, or change one'
            cand delete 'Delete a queue that holds no run'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;queues'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand ls 'List the queues with what waits and runs in them'
            cand create 'Create a queue, or change one'
            cand delete 'Delete a queue that holds no run'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;queue;ls'= {
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;queues;ls'= {
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;queue;create'= {
            cand --concurrency 'At most this many of its runs at once (default: no limit)'
            cand --priority 'Agents serving several queues claim from higher ones first'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;queues;create'= {
            cand --concurrency 'At most this many of its runs at once (default: no limit)'
            cand --priority 'Agents serving several queues claim from higher ones first'
            cand -o 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand --output 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;queue;delete'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;queues;delete'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;queue;help'= {
            cand ls 'List the queues with what waits and runs in them'
            cand create 'Create a queue, or change one'
            cand delete 'Delete a queue that holds no run'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;queue;help;ls'= {
        }
        &'polyaxon;queue;help;create'= {
        }
        &'polyaxon;queue;help;delete'= {
        }
        &'polyaxon;queue;help;help'= {
        }
        &'polyaxon;queues;help'= {
            cand ls 'List the queues with what waits and runs in them'
            cand create 'Create a queue, or change one'
            cand delete 'Delete a queue that holds no run'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;queues;help;ls'= {
        }
        &'polyaxon;queues;help;create'= {
        }
        &'polyaxon;queues;help;delete'= {
        }
        &'polyaxon;queues;help;help'= {
        }
        &'polyaxon;port-forward'= {
            cand -p 'The local port'
            cand --port 'The local port'
            cand -n 'The namespace of the deploy'
            cand --namespace 'The namespace of the deploy'
            cand -r 'The release name of the deploy (`admin deploy`''s)'
            cand --release-name 'The release name of the deploy (`admin deploy`''s)'
            cand -s 'The service: `gateway` or `api` (the server, the default), or a Service''s name'
            cand --service 'The service: `gateway` or `api` (the server, the default), or a Service''s name'
            cand --address 'The local address to listen on (also `-add`)'
            cand --context 'The kubeconfig context (default: the current one)'
            cand -t 'Accepted for upstream''s scripts: the deploy is always Kubernetes'
            cand --deployment-type 'Accepted for upstream''s scripts: the deploy is always Kubernetes'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;server'= {
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand start 'Serve the API (PostgreSQL with `--database-url`, else SQLite under `POLYAXON_HOME`)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;server;start'= {
            cand --database-url 'The database: `postgres://user:password@host/db`, or `sqlite:///path/polyaxon.db`. Default: SQLite in `$POLYAXON_HOME/polyaxon.db`'
            cand --host 'The address to listen on'
            cand -p 'The port to listen on (0 picks a free one)'
            cand --port 'The port to listen on (0 picks a free one)'
            cand --artifacts-root 'Where runs'' files are kept. Default: `$POLYAXON_HOME/artifacts`'
            cand --artifacts-store 'An object store for runs'' files: `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix` (`wasb://container@account.blob.core.windows.net/prefix`), with each cloud''s standard credentials (`AWS_*`, `GOOGLE_*`, `AZURE_*`). Checked at start. Logs and event files stay in `--artifacts-root` while the server takes them in'
            cand --artifacts-store-option 'A setting of the store''s client, `KEY=VALUE` (repeatable): `endpoint=http://minio:9000`, `allow_http=true`, `region=eu-west-1`, … (the `object_store` builders'' keys)'
            cand --connections 'Connections to create or update at start: a YAML list of `{name, kind, description, tags, schema, secret: env:NAME | file:/path}` (those created through the API are kept)'
            cand --k8s-service-host 'Where the services proxy reaches a Kubernetes run''s Service: `{name}` and `{namespace}` are filled in (a server outside the cluster can point this at a tunnel)'
            cand --open 'Accept requests without a token, as the single user `default` (a private machine only)'
            cand --notify-allow-link-local 'Let notifications go to link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10), refused by default'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;server;help'= {
            cand start 'Serve the API (PostgreSQL with `--database-url`, else SQLite under `POLYAXON_HOME`)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;server;help;start'= {
        }
        &'polyaxon;server;help;help'= {
        }
        &'polyaxon;sidecar'= {
            cand --dir 'The run''s artifacts directory (default: `POLYAXON_RUN_ARTIFACTS_PATH`)'
            cand --interval 'Seconds between passes'
            cand --exclude 'A top-level entry of the directory never sent (repeatable; default: `code`, which the init steps fetched)'
            cand --final-timeout 'Seconds the last pass may take, with its retries, once told to stop (SIGTERM)'
            cand -p 'The run''s project (default: from `POLYAXON_RUN_INSTANCE`)'
            cand --project 'The run''s project (default: from `POLYAXON_RUN_INSTANCE`)'
            cand --uid 'The run (default: from `POLYAXON_RUN_INSTANCE`)'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;generate-docs'= {
            cand --out 'The repository''s root: writes `completions/` and `man/` in it'
            cand -v 'Print more detail about what happens'
            cand --verbose 'Print more detail about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'polyaxon;help'= {
            cand run 'Run a polyaxonfile: check it, snapshot the code, start the job'
            cand check 'Check polyaxonfiles: syntax, schema, params and templates'
            cand hub 'The component hub: the components `hubRef` and `run --hub` find (list, print)'
            cand project 'Projects: create, list, show, change, delete'
            cand ops 'Runs (operations): list, inspect, follow, stop, restart, download'
            cand logs 'Show a run''s logs (the last run used, or `--uid`), following it while it runs'
            cand config 'Show, set and reset the CLI''s configuration'
            cand login 'Log in to a server (the embedded default needs no login)'
            cand logout 'Forget the credentials of the configured server'
            cand whoami 'Show who you are on the configured server'
            cand token 'Your personal tokens on the server: list, create, revoke'
            cand version 'Show the CLI''s version and the server''s'
            cand init 'Set the current project for this directory (kept in `./.polyaxon/`)'
            cand dashboard 'Open the web dashboard'
            cand completion 'Print a shell completion script'
            cand admin 'Deploy, upgrade and tear down the server on a Kubernetes cluster'
            cand agent 'Agents: claim queued runs and run them (`agent start`), list them, show their queues'
            cand connections 'Connections: notifiers (Slack, webhooks, …) and what operations name in `connections:`'
            cand queue 'Queues runs wait in for agents: list, create or change, delete'
            cand port-forward 'Forward the deployed server (or another Service) to a local port, until Ctrl-C'
            cand server 'Run the API server'
            cand sidecar 'Send a run''s files to the server from beside its job (the Kubernetes executor puts it in each pod), every few seconds and once more when told to stop'
            cand generate-docs 'Write the shell completions and man pages (for packagers; the repository keeps them)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'polyaxon;help;run'= {
        }
        &'polyaxon;help;check'= {
        }
        &'polyaxon;help;hub'= {
            cand ls 'List the components: name, tag, where each comes from, what it is'
            cand get 'Print a component''s polyaxonfile (`NAME` or `NAME:TAG`)'
        }
        &'polyaxon;help;hub;ls'= {
        }
        &'polyaxon;help;hub;get'= {
        }
        &'polyaxon;help;project'= {
            cand create 'Create a project'
            cand ls 'List projects'
            cand get 'Show a project'
            cand update 'Change a project''s name, description, tags or visibility'
            cand delete 'Delete a project with its runs and their files'
            cand dashboard 'Open a project in the web dashboard'
        }
        &'polyaxon;help;project;create'= {
        }
        &'polyaxon;help;project;ls'= {
        }
        &'polyaxon;help;project;get'= {
        }
        &'polyaxon;help;project;update'= {
        }
        &'polyaxon;help;project;delete'= {
        }
        &'polyaxon;help;project;dashboard'= {
        }
        &'polyaxon;help;ops'= {
            cand ls 'List a project''s runs'
            cand get 'Show a run'
            cand statuses 'Show a run''s status history, or follow it with `--watch`'
            cand notifications 'Show a run''s notifications and hooks: each delivery''s state, tries and last error'
            cand logs 'Show a run''s logs, following it while it runs'
            cand metrics 'Show a run''s metrics: last values, or the series (`--plot` draws them)'
            cand artifacts 'Download a run''s files'
            cand code 'Show where a run''s code came from, or write it out (`--checkout DIR`)'
            cand stop 'Stop a run'
            cand skip 'Skip a run that has not started (an operation of a DAG)'
            cand delete 'Delete a run and its files'
            cand restart 'Run a run again as a new run (`--copy` starts from a copy of its files)'
            cand resume 'Continue a finished run in place, with its files'
            cand update 'Change a run''s name, description or tags'
            cand approve 'Approve a run waiting for approval'
            cand dashboard 'Open a run in the web dashboard'
            cand service 'Reach a running service: its address here, or its ports forwarded from the cluster'
            cand execute 'Execute a created run on this machine, in the foreground (what `polyaxon run` starts in the background)'
        }
        &'polyaxon;help;ops;ls'= {
        }
        &'polyaxon;help;ops;get'= {
        }
        &'polyaxon;help;ops;statuses'= {
        }
        &'polyaxon;help;ops;notifications'= {
        }
        &'polyaxon;help;ops;logs'= {
        }
        &'polyaxon;help;ops;metrics'= {
        }
        &'polyaxon;help;ops;artifacts'= {
        }
        &'polyaxon;help;ops;code'= {
        }
        &'polyaxon;help;ops;stop'= {
        }
        &'polyaxon;help;ops;skip'= {
        }
        &'polyaxon;help;ops;delete'= {
        }
        &'polyaxon;help;ops;restart'= {
        }
        &'polyaxon;help;ops;resume'= {
        }
        &'polyaxon;help;ops;update'= {
        }
        &'polyaxon;help;ops;approve'= {
        }
        &'polyaxon;help;ops;dashboard'= {
        }
        &'polyaxon;help;ops;service'= {
        }
        &'polyaxon;help;ops;execute'= {
        }
        &'polyaxon;help;logs'= {
        }
        &'polyaxon;help;config'= {
            cand show 'Show the configuration and where it comes from'
            cand get 'Print configuration values, one per line'
            cand set 'Change configuration values'
            cand purge 'Reset the configuration, credentials and caches (never the runs kept here)'
        }
        &'polyaxon;help;config;show'= {
        }
        &'polyaxon;help;config;get'= {
        }
        &'polyaxon;help;config;set'= {
        }
        &'polyaxon;help;config;purge'= {
        }
        &'polyaxon;help;login'= {
        }
        &'polyaxon;help;logout'= {
        }
        &'polyaxon;help;whoami'= {
        }
        &'polyaxon;help;token'= {
            cand ls 'List your tokens (never their secrets): id, name, created, expiry'
            cand create 'Create a token; its secret is printed this once'
            cand revoke 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once'
        }
        &'polyaxon;help;token;ls'= {
        }
        &'polyaxon;help;token;create'= {
        }
        &'polyaxon;help;token;revoke'= {
        }
        &'polyaxon;help;version'= {
        }
        &'polyaxon;help;init'= {
        }
        &'polyaxon;help;dashboard'= {
        }
        &'polyaxon;help;completion'= {
        }
        &'polyaxon;help;admin'= {
            cand deploy 'Deploy the server, its database and the executor''s RBAC to a cluster'
            cand upgrade 'Apply a changed config to a deploy (its generated secrets are kept)'
            cand teardown 'Remove a deploy; the database''s volume stays unless `--delete-volumes`'
        }
        &'polyaxon;help;admin;deploy'= {
        }
        &'polyaxon;help;admin;upgrade'= {
        }
        &'polyaxon;help;admin;teardown'= {
        }
        &'polyaxon;help;agent'= {
            cand start 'Claim queued runs and run them here, until SIGTERM or Ctrl-C (then drain)'
            cand ls 'List the agents: name, version, executor, queues, load, state, last seen'
            cand status 'Show each queue: waiting and running runs, concurrency, the agents serving it'
        }
        &'polyaxon;help;agent;start'= {
        }
        &'polyaxon;help;agent;ls'= {
        }
        &'polyaxon;help;agent;status'= {
        }
        &'polyaxon;help;connections'= {
            cand ls 'List the connections: name, kind, where they point, whether they have a secret'
            cand get 'Show a connection'
            cand create 'Create a connection (superusers)'
            cand delete 'Delete connections by name (superusers)'
        }
        &'polyaxon;help;connections;ls'= {
        }
        &'polyaxon;help;connections;get'= {
        }
        &'polyaxon;help;connections;create'= {
        }
        &'polyaxon;help;connections;delete'= {
        }
        &'polyaxon;help;queue'= {
            cand ls 'List the queues with what waits and runs in them'
            cand create 'Create a queue, or change one'
            cand delete 'Delete a queue that holds no run'
        }
        &'polyaxon;help;queue;ls'= {
        }
        &'polyaxon;help;queue;create'= {
        }
        &'polyaxon;help;queue;delete'= {
        }
        &'polyaxon;help;port-forward'= {
        }
        &'polyaxon;help;server'= {
            cand start 'Serve the API (PostgreSQL with `--database-url`, else SQLite under `POLYAXON_HOME`)'
        }
        &'polyaxon;help;server;start'= {
        }
        &'polyaxon;help;sidecar'= {
        }
        &'polyaxon;help;generate-docs'= {
        }
        &'polyaxon;help;help'= {
        }
    ]
    $completions[$command]
}
