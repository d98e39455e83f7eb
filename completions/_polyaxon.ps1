
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'polyaxon' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'polyaxon'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'polyaxon' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run a polyaxonfile: check it, snapshot the code, start the job')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Check polyaxonfiles: syntax, schema, params and templates')
            [CompletionResult]::new('hub', 'hub', [CompletionResultType]::ParameterValue, 'The component hub: the components `hubRef` and `run --hub` find (list, print)')
            [CompletionResult]::new('project', 'project', [CompletionResultType]::ParameterValue, 'Projects: create, list, show, change, delete')
            [CompletionResult]::new('projects', 'projects', [CompletionResultType]::ParameterValue, 'Projects: create, list, show, change, delete')
            [CompletionResult]::new('ops', 'ops', [CompletionResultType]::ParameterValue, 'Runs (operations): list, inspect, follow, stop, restart, download')
            [CompletionResult]::new('logs', 'logs', [CompletionResultType]::ParameterValue, 'Show a run''s logs (the last run used, or `--uid`), following it while it runs')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Show, set and reset the CLI''s configuration')
            [CompletionResult]::new('login', 'login', [CompletionResultType]::ParameterValue, 'Log in to a server (the embedded default needs no login)')
            [CompletionResult]::new('logout', 'logout', [CompletionResultType]::ParameterValue, 'Forget the credentials of the configured server')
            [CompletionResult]::new('whoami', 'whoami', [CompletionResultType]::ParameterValue, 'Show who you are on the configured server')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Your personal tokens on the server: list, create, revoke')
            [CompletionResult]::new('tokens', 'tokens', [CompletionResultType]::ParameterValue, 'Your personal tokens on the server: list, create, revoke')
            [CompletionResult]::new('version', 'version', [CompletionResultType]::ParameterValue, 'Show the CLI''s version and the server''s')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Set the current project for this directory (kept in `./.polyaxon/`)')
            [CompletionResult]::new('dashboard', 'dashboard', [CompletionResultType]::ParameterValue, 'Open the web dashboard')
            [CompletionResult]::new('completion', 'completion', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('admin', 'admin', [CompletionResultType]::ParameterValue, 'Deploy, upgrade and tear down the server on a Kubernetes cluster')
            [CompletionResult]::new('agent', 'agent', [CompletionResultType]::ParameterValue, 'Agents: claim queued runs and run them (`agent start`), list them, show their queues')
            [CompletionResult]::new('connections', 'connections', [CompletionResultType]::ParameterValue, 'Connections: notifiers (Slack, webhooks, …) and what operations name in `connections:`')
            [CompletionResult]::new('connection', 'connection', [CompletionResultType]::ParameterValue, 'Connections: notifiers (Slack, webhooks, …) and what operations name in `connections:`')
            [CompletionResult]::new('queue', 'queue', [CompletionResultType]::ParameterValue, 'Queues runs wait in for agents: list, create or change, delete')
            [CompletionResult]::new('queues', 'queues', [CompletionResultType]::ParameterValue, 'Queues runs wait in for agents: list, create or change, delete')
            [CompletionResult]::new('port-forward', 'port-forward', [CompletionResultType]::ParameterValue, 'Forward the deployed server (or another Service) to a local port, until Ctrl-C')
            [CompletionResult]::new('server', 'server', [CompletionResultType]::ParameterValue, 'Run the API server')
            [CompletionResult]::new('sidecar', 'sidecar', [CompletionResultType]::ParameterValue, 'Send a run''s files to the server from beside its job (the Kubernetes executor puts it in each pod), every few seconds and once more when told to stop')
            [CompletionResult]::new('generate-docs', 'generate-docs', [CompletionResultType]::ParameterValue, 'Write the shell completions and man pages (for packagers; the repository keeps them)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;run' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'The polyaxonfile(s); later files patch earlier ones. Default: `polyaxonfile.yml` and the other names upstream looks for, here')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'The polyaxonfile(s); later files patch earlier ones. Default: `polyaxonfile.yml` and the other names upstream looks for, here')
            [CompletionResult]::new('--hub', '--hub', [CompletionResultType]::ParameterName, 'Run a component of the hub, `NAME` or `NAME:TAG` (`polyaxon hub ls` lists them): as an operation with `hubRef: NAME[:TAG]`; `-f` files after it patch it')
            [CompletionResult]::new('-P', '-P ', [CompletionResultType]::ParameterName, 'A value for an input: `-P lr=0.01` (repeatable)')
            [CompletionResult]::new('--param', '--param', [CompletionResultType]::ParameterName, 'A value for an input: `-P lr=0.01` (repeatable)')
            [CompletionResult]::new('--hparam', '--hparam', [CompletionResultType]::ParameterName, 'A searched param, `NAME=KIND:VALUE`: `-HP lr=choice:[0.1,0.01]`, `-HP bs=range:16:128:16`, `-HP lr=loguniform:-9:-2` (any matrix param kind); makes the run a search (repeatable)')
            [CompletionResult]::new('--matrix-kind', '--matrix-kind', [CompletionResultType]::ParameterName, 'The search''s kind with `-HP`: grid (the default), random, mapping or hyperband')
            [CompletionResult]::new('--matrix-concurrency', '--matrix-concurrency', [CompletionResultType]::ParameterName, 'Trials at once with `-HP` (default 1)')
            [CompletionResult]::new('--matrix-num-runs', '--matrix-num-runs', [CompletionResultType]::ParameterName, 'How many trials with `-HP` (random: required; grid: a cap)')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the directory''s, else `default`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the directory''s, else `default`)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'A name for the run')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'A name for the run')
            [CompletionResult]::new('--tags', '--tags', [CompletionResultType]::ParameterName, 'Tags, comma-separated')
            [CompletionResult]::new('--description', '--description', [CompletionResultType]::ParameterName, 'A description')
            [CompletionResult]::new('--executor', '--executor', [CompletionResultType]::ParameterName, 'Where the job runs: `process` (this machine, the default), `docker`, or `kubernetes` (`k8s`: the cluster of the kubeconfig''s context; `POLYAXON_K8S_CONTEXT`, `POLYAXON_K8S_NAMESPACE` choose). Default: POLYAXON_EXECUTOR, else `config set --executor`')
            [CompletionResult]::new('--exc', '--exc', [CompletionResultType]::ParameterName, 'Where the job runs: `process` (this machine, the default), `docker`, or `kubernetes` (`k8s`: the cluster of the kubeconfig''s context; `POLYAXON_K8S_CONTEXT`, `POLYAXON_K8S_NAMESPACE` choose). Default: POLYAXON_EXECUTOR, else `config set --executor`')
            [CompletionResult]::new('--presets', '--presets', [CompletionResultType]::ParameterName, 'Named presets to apply, comma-separated')
            [CompletionResult]::new('--upload-from', '--upload-from', [CompletionResultType]::ParameterName, 'The directory to upload (implies `-u`; default: the directory the code runs from)')
            [CompletionResult]::new('--u-from', '--u-from', [CompletionResultType]::ParameterName, 'The directory to upload (implies `-u`; default: the directory the code runs from)')
            [CompletionResult]::new('--upload-to', '--upload-to', [CompletionResultType]::ParameterName, 'Where in the run''s artifacts the upload goes (implies `-u`; `/` for the root)')
            [CompletionResult]::new('--u-to', '--u-to', [CompletionResultType]::ParameterName, 'Where in the run''s artifacts the upload goes (implies `-u`; `/` for the root)')
            [CompletionResult]::new('--queue', '--queue', [CompletionResultType]::ParameterName, 'The queue the run waits in for an agent (upstream''s `agent/queue` names work; default: the spec''s `queue`, else the project''s, else `default`)')
            [CompletionResult]::new('--priority', '--priority', [CompletionResultType]::ParameterName, 'Its priority in the queue: higher runs are claimed first (default 0)')
            [CompletionResult]::new('--approved', '--approved', [CompletionResultType]::ParameterName, '`--approved false` holds the run until `polyaxon ops approve` (as `isApproved: false`)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Follow the run''s statuses until it ends')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Follow the run''s statuses until it ends')
            [CompletionResult]::new('-l', '-l', [CompletionResultType]::ParameterName, 'Follow the run''s logs until it ends (Ctrl-C stops the run)')
            [CompletionResult]::new('--logs', '--logs', [CompletionResultType]::ParameterName, 'Follow the run''s logs until it ends (Ctrl-C stops the run)')
            [CompletionResult]::new('--log', '--log', [CompletionResultType]::ParameterName, 'Follow the run''s logs until it ends (Ctrl-C stops the run)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Print the Kubernetes manifests the run becomes (`-o yaml`, the default, or `-o json`) instead of running it. Needs no cluster')
            [CompletionResult]::new('--stdout-metrics', '--stdout-metrics', [CompletionResultType]::ParameterName, 'Read `name=value` lines the job prints as metrics (also: `POLYAXON_STDOUT_METRICS=true` in the container''s env)')
            [CompletionResult]::new('--cache', '--cache', [CompletionResultType]::ParameterName, 'Reuse the results of a run with the same component, inputs and code that succeeded, instead of running again (default: when the spec has a `cache` section, and for a DAG''s operations)')
            [CompletionResult]::new('--nocache', '--nocache', [CompletionResultType]::ParameterName, 'Run even when an equal run succeeded before (the cache off)')
            [CompletionResult]::new('-u', '-u', [CompletionResultType]::ParameterName, 'Upload the code to the run''s artifacts (`uploads/`) before it starts: in a git repository the files of the run''s code snapshot, elsewhere the directory''s files less what `.polyaxonignore` excludes. The job finds them under its artifacts path')
            [CompletionResult]::new('--upload', '--upload', [CompletionResultType]::ParameterName, 'Upload the code to the run''s artifacts (`uploads/`) before it starts: in a git repository the files of the run''s code snapshot, elsewhere the directory''s files less what `.polyaxonignore` excludes. The job finds them under its artifacts path')
            [CompletionResult]::new('--local', '--local', [CompletionResultType]::ParameterName, 'Run it on this machine even when an agent serves its queue')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;check' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'The polyaxonfile(s); later files patch earlier ones (presets, overrides)')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'The polyaxonfile(s); later files patch earlier ones (presets, overrides)')
            [CompletionResult]::new('-P', '-P ', [CompletionResultType]::ParameterName, 'A value for an input: `-P lr=0.01` (repeatable)')
            [CompletionResult]::new('--param', '--param', [CompletionResultType]::ParameterName, 'A value for an input: `-P lr=0.01` (repeatable)')
            [CompletionResult]::new('--presets', '--presets', [CompletionResultType]::ParameterName, 'Named presets to apply, comma-separated')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-l', '-l', [CompletionResultType]::ParameterName, 'Check the specification only: no values needed, templates not rendered')
            [CompletionResult]::new('--lint', '--lint', [CompletionResultType]::ParameterName, 'Check the specification only: no values needed, templates not rendered')
            [CompletionResult]::new('--upgrade', '--upgrade', [CompletionResultType]::ParameterName, 'Print the file as a version 1.1 polyaxonfile (upgrading v0.6 files)')
            [CompletionResult]::new('--schema', '--schema', [CompletionResultType]::ParameterName, 'Print the JSON Schema of polyaxonfiles (for editors) and exit')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;hub' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List the components: name, tag, where each comes from, what it is')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Print a component''s polyaxonfile (`NAME` or `NAME:TAG`)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;hub;ls' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;hub;get' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;hub;help' {
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List the components: name, tag, where each comes from, what it is')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Print a component''s polyaxonfile (`NAME` or `NAME:TAG`)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;hub;help;ls' {
            break
        }
        'polyaxon;hub;help;get' {
            break
        }
        'polyaxon;hub;help;help' {
            break
        }
        'polyaxon;project' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a project')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List projects')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show a project')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a project''s name, description, tags or visibility')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a project with its runs and their files')
            [CompletionResult]::new('dashboard', 'dashboard', [CompletionResultType]::ParameterValue, 'Open a project in the web dashboard')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;projects' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a project')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List projects')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show a project')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a project''s name, description, tags or visibility')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a project with its runs and their files')
            [CompletionResult]::new('dashboard', 'dashboard', [CompletionResultType]::ParameterValue, 'Open a project in the web dashboard')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;project;create' {
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The project''s name, `NAME` or `OWNER/NAME`')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'The project''s name, `NAME` or `OWNER/NAME`')
            [CompletionResult]::new('--description', '--description', [CompletionResultType]::ParameterName, 'What the project is about')
            [CompletionResult]::new('--tags', '--tags', [CompletionResultType]::ParameterName, 'Tags, comma-separated')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--public', '--public', [CompletionResultType]::ParameterName, 'Let everyone on the server see it')
            [CompletionResult]::new('--init', '--init', [CompletionResultType]::ParameterName, 'Also make it this directory''s current project (as `polyaxon init`)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;projects;create' {
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The project''s name, `NAME` or `OWNER/NAME`')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'The project''s name, `NAME` or `OWNER/NAME`')
            [CompletionResult]::new('--description', '--description', [CompletionResultType]::ParameterName, 'What the project is about')
            [CompletionResult]::new('--tags', '--tags', [CompletionResultType]::ParameterName, 'Tags, comma-separated')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--public', '--public', [CompletionResultType]::ParameterName, 'Let everyone on the server see it')
            [CompletionResult]::new('--init', '--init', [CompletionResultType]::ParameterName, 'Also make it this directory''s current project (as `polyaxon init`)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;project;ls' {
            [CompletionResult]::new('--owner', '--owner', [CompletionResultType]::ParameterName, 'Whose projects (default: yours)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only projects matching this query, e.g. `tags: vision, name: %mnist%`')
            [CompletionResult]::new('--query', '--query', [CompletionResultType]::ParameterName, 'Only projects matching this query, e.g. `tags: vision, name: %mnist%`')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Order, e.g. `-created_at` or `name`')
            [CompletionResult]::new('--sort', '--sort', [CompletionResultType]::ParameterName, 'Order, e.g. `-created_at` or `name`')
            [CompletionResult]::new('-l', '-l', [CompletionResultType]::ParameterName, 'At most this many')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'At most this many')
            [CompletionResult]::new('--offset', '--offset', [CompletionResultType]::ParameterName, 'Skip this many')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;projects;ls' {
            [CompletionResult]::new('--owner', '--owner', [CompletionResultType]::ParameterName, 'Whose projects (default: yours)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only projects matching this query, e.g. `tags: vision, name: %mnist%`')
            [CompletionResult]::new('--query', '--query', [CompletionResultType]::ParameterName, 'Only projects matching this query, e.g. `tags: vision, name: %mnist%`')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Order, e.g. `-created_at` or `name`')
            [CompletionResult]::new('--sort', '--sort', [CompletionResultType]::ParameterName, 'Order, e.g. `-created_at` or `name`')
            [CompletionResult]::new('-l', '-l', [CompletionResultType]::ParameterName, 'At most this many')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'At most this many')
            [CompletionResult]::new('--offset', '--offset', [CompletionResultType]::ParameterName, 'Skip this many')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;project;get' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;projects;get' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;project;update' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'A new name')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'A new name')
            [CompletionResult]::new('--description', '--description', [CompletionResultType]::ParameterName, 'A new description')
            [CompletionResult]::new('--tags', '--tags', [CompletionResultType]::ParameterName, 'New tags, comma-separated (replacing the old ones)')
            [CompletionResult]::new('--private', '--private', [CompletionResultType]::ParameterName, '`true` to make it private, `false` to make it public')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;projects;update' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'A new name')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'A new name')
            [CompletionResult]::new('--description', '--description', [CompletionResultType]::ParameterName, 'A new description')
            [CompletionResult]::new('--tags', '--tags', [CompletionResultType]::ParameterName, 'New tags, comma-separated (replacing the old ones)')
            [CompletionResult]::new('--private', '--private', [CompletionResultType]::ParameterName, '`true` to make it private, `false` to make it public')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;project;delete' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;projects;delete' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;project;dashboard' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Open the browser without asking')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Open the browser without asking')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Print the address instead of opening a browser')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;projects;dashboard' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Open the browser without asking')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Open the browser without asking')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Print the address instead of opening a browser')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;project;help' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a project')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List projects')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show a project')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a project''s name, description, tags or visibility')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a project with its runs and their files')
            [CompletionResult]::new('dashboard', 'dashboard', [CompletionResultType]::ParameterValue, 'Open a project in the web dashboard')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;project;help;create' {
            break
        }
        'polyaxon;project;help;ls' {
            break
        }
        'polyaxon;project;help;get' {
            break
        }
        'polyaxon;project;help;update' {
            break
        }
        'polyaxon;project;help;delete' {
            break
        }
        'polyaxon;project;help;dashboard' {
            break
        }
        'polyaxon;project;help;help' {
            break
        }
        'polyaxon;projects;help' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a project')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List projects')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show a project')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a project''s name, description, tags or visibility')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a project with its runs and their files')
            [CompletionResult]::new('dashboard', 'dashboard', [CompletionResultType]::ParameterValue, 'Open a project in the web dashboard')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;projects;help;create' {
            break
        }
        'polyaxon;projects;help;ls' {
            break
        }
        'polyaxon;projects;help;get' {
            break
        }
        'polyaxon;projects;help;update' {
            break
        }
        'polyaxon;projects;help;delete' {
            break
        }
        'polyaxon;projects;help;dashboard' {
            break
        }
        'polyaxon;projects;help;help' {
            break
        }
        'polyaxon;ops' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--uuid', '--uuid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List a project''s runs')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show a run')
            [CompletionResult]::new('statuses', 'statuses', [CompletionResultType]::ParameterValue, 'Show a run''s status history, or follow it with `--watch`')
            [CompletionResult]::new('notifications', 'notifications', [CompletionResultType]::ParameterValue, 'Show a run''s notifications and hooks: each delivery''s state, tries and last error')
            [CompletionResult]::new('logs', 'logs', [CompletionResultType]::ParameterValue, 'Show a run''s logs, following it while it runs')
            [CompletionResult]::new('metrics', 'metrics', [CompletionResultType]::ParameterValue, 'Show a run''s metrics: last values, or the series (`--plot` draws them)')
            [CompletionResult]::new('artifacts', 'artifacts', [CompletionResultType]::ParameterValue, 'Download a run''s files')
            [CompletionResult]::new('code', 'code', [CompletionResultType]::ParameterValue, 'Show where a run''s code came from, or write it out (`--checkout DIR`)')
            [CompletionResult]::new('stop', 'stop', [CompletionResultType]::ParameterValue, 'Stop a run')
            [CompletionResult]::new('skip', 'skip', [CompletionResultType]::ParameterValue, 'Skip a run that has not started (an operation of a DAG)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a run and its files')
            [CompletionResult]::new('restart', 'restart', [CompletionResultType]::ParameterValue, 'Run a run again as a new run (`--copy` starts from a copy of its files)')
            [CompletionResult]::new('resume', 'resume', [CompletionResultType]::ParameterValue, 'Continue a finished run in place, with its files')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a run''s name, description or tags')
            [CompletionResult]::new('approve', 'approve', [CompletionResultType]::ParameterValue, 'Approve a run waiting for approval')
            [CompletionResult]::new('dashboard', 'dashboard', [CompletionResultType]::ParameterValue, 'Open a run in the web dashboard')
            [CompletionResult]::new('service', 'service', [CompletionResultType]::ParameterValue, 'Reach a running service: its address here, or its ports forwarded from the cluster')
            [CompletionResult]::new('execute', 'execute', [CompletionResultType]::ParameterValue, 'Execute a created run on this machine, in the foreground (what `polyaxon run` starts in the background)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;ops;ls' {
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only runs matching this query, e.g. `status: running|failed, metrics.loss: <0.2`')
            [CompletionResult]::new('--query', '--query', [CompletionResultType]::ParameterName, 'Only runs matching this query, e.g. `status: running|failed, metrics.loss: <0.2`')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Order, e.g. `-created_at` or `metrics.loss` (default: last changed first)')
            [CompletionResult]::new('--sort', '--sort', [CompletionResultType]::ParameterName, 'Order, e.g. `-created_at` or `metrics.loss` (default: last changed first)')
            [CompletionResult]::new('-l', '-l', [CompletionResultType]::ParameterName, 'At most this many')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'At most this many')
            [CompletionResult]::new('--offset', '--offset', [CompletionResultType]::ParameterName, 'Skip this many (also `-off`)')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Columns to show, comma-separated: `uuid, name, status, kind, user, tags, created, started, finished, duration, description, params.NAME, metrics.NAME, …`')
            [CompletionResult]::new('--columns', '--columns', [CompletionResultType]::ParameterName, 'Columns to show, comma-separated: `uuid, name, status, kind, user, tags, created, started, finished, duration, description, params.NAME, metrics.NAME, …`')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--uuid', '--uuid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--io', '--io', [CompletionResultType]::ParameterName, 'Show inputs and outputs (params and last metric values) as columns')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;ops;get' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--uuid', '--uuid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;ops;statuses' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--uuid', '--uuid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Keep printing new statuses until the run ends')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Keep printing new statuses until the run ends')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;ops;notifications' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--uuid', '--uuid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;ops;logs' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--uuid', '--uuid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--no-follow', '--no-follow', [CompletionResultType]::ParameterName, 'Print what is there and stop, even while the run goes on (also `-nf`)')
            [CompletionResult]::new('--hide-time', '--hide-time', [CompletionResultType]::ParameterName, 'Without timestamps')
            [CompletionResult]::new('-a', '-a', [CompletionResultType]::ParameterName, 'With the node, pod and container of each line')
            [CompletionResult]::new('--all-info', '--all-info', [CompletionResultType]::ParameterName, 'With the node, pod and container of each line')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;ops;metrics' {
            [CompletionResult]::new('--names', '--names', [CompletionResultType]::ParameterName, 'Only these metrics, comma-separated')
            [CompletionResult]::new('--sample', '--sample', [CompletionResultType]::ParameterName, 'At most this many points per series (keeping its shape); default: 1,000, or the chart''s resolution with `--plot`')
            [CompletionResult]::new('--height', '--height', [CompletionResultType]::ParameterName, 'Chart height in lines (with `--plot`)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--uuid', '--uuid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--plot', '--plot', [CompletionResultType]::ParameterName, 'Draw the series as charts in the terminal')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;ops;artifacts' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'A file to download, relative to the run''s directory (repeatable)')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'A file to download, relative to the run''s directory (repeatable)')
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'A directory to download (repeatable)')
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'A directory to download (repeatable)')
            [CompletionResult]::new('--lineage-name', '--lineage-name', [CompletionResultType]::ParameterName, 'The artifacts of the run''s lineage with this name (repeatable): their paths are downloaded (`polyaxon.tracking`''s `log_model_ref`, `log_artifact_ref`, …)')
            [CompletionResult]::new('--lineage-kind', '--lineage-kind', [CompletionResultType]::ParameterName, 'The artifacts of the run''s lineage of this kind (`model`, `data`, `file`, `dir`, `tensorboard`, …; repeatable)')
            [CompletionResult]::new('--path', '--path', [CompletionResultType]::ParameterName, 'Where to put them (default: `./<run uuid>`)')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--uuid', '--uuid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--no-untar', '--no-untar', [CompletionResultType]::ParameterName, 'Keep directories as `.tar.gz` archives instead of unpacking them')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;ops;code' {
            [CompletionResult]::new('--checkout', '--checkout', [CompletionResultType]::ParameterName, 'Write the run''s code into this directory (new or empty)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--uuid', '--uuid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;ops;stop' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--uuid', '--uuid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;ops;skip' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--uuid', '--uuid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;ops;delete' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--uuid', '--uuid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;ops;restart' {
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'A name for the new run')
            [CompletionResult]::new('--tags', '--tags', [CompletionResultType]::ParameterName, 'Tags for the new run, comma-separated')
            [CompletionResult]::new('--description', '--description', [CompletionResultType]::ParameterName, 'A description for the new run')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--uuid', '--uuid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Start from a copy of the run''s files (outputs, checkpoints) instead of none')
            [CompletionResult]::new('--copy', '--copy', [CompletionResultType]::ParameterName, 'Start from a copy of the run''s files (outputs, checkpoints) instead of none')
            [CompletionResult]::new('--downstream', '--downstream', [CompletionResultType]::ParameterName, 'With an operation of a DAG: run its DAG again from this operation — it and everything that depends on it run again, the other operations'' results are reused')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;ops;resume' {
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'A new name for the run')
            [CompletionResult]::new('--tags', '--tags', [CompletionResultType]::ParameterName, 'New tags, comma-separated')
            [CompletionResult]::new('--description', '--description', [CompletionResultType]::ParameterName, 'A new description')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--uuid', '--uuid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;ops;update' {
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'A new name')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'A new name')
            [CompletionResult]::new('--description', '--description', [CompletionResultType]::ParameterName, 'A new description')
            [CompletionResult]::new('--tags', '--tags', [CompletionResultType]::ParameterName, 'Tags to add, comma-separated')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--uuid', '--uuid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;ops;approve' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--uuid', '--uuid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;ops;dashboard' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--uuid', '--uuid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Open the browser without asking')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Open the browser without asking')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Print the address instead of opening a browser')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;ops;service' {
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'The local port of a forwarded service (default: its own port when free, else any)')
            [CompletionResult]::new('--address', '--address', [CompletionResultType]::ParameterName, 'The local address a forwarded service listens on (also `-add`)')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--uuid', '--uuid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Open the browser without asking')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Open the browser without asking')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Print the address instead of opening a browser')
            [CompletionResult]::new('--external', '--external', [CompletionResultType]::ParameterName, 'Accepted for upstream''s scripts: services are reached directly or forwarded')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;ops;execute' {
            [CompletionResult]::new('--executor', '--executor', [CompletionResultType]::ParameterName, 'Where the job runs: `process` (this machine), `docker` or `kubernetes` (`k8s`)')
            [CompletionResult]::new('--exc', '--exc', [CompletionResultType]::ParameterName, 'Where the job runs: `process` (this machine), `docker` or `kubernetes` (`k8s`)')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--uuid', '--uuid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--run-from-stdin', '--run-from-stdin', [CompletionResultType]::ParameterName, 'Wait for the run on standard input (`OWNER/PROJECT UUID`), the store opened meanwhile; end-of-file exits quietly (what `polyaxon run` uses)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;ops;help' {
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List a project''s runs')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show a run')
            [CompletionResult]::new('statuses', 'statuses', [CompletionResultType]::ParameterValue, 'Show a run''s status history, or follow it with `--watch`')
            [CompletionResult]::new('notifications', 'notifications', [CompletionResultType]::ParameterValue, 'Show a run''s notifications and hooks: each delivery''s state, tries and last error')
            [CompletionResult]::new('logs', 'logs', [CompletionResultType]::ParameterValue, 'Show a run''s logs, following it while it runs')
            [CompletionResult]::new('metrics', 'metrics', [CompletionResultType]::ParameterValue, 'Show a run''s metrics: last values, or the series (`--plot` draws them)')
            [CompletionResult]::new('artifacts', 'artifacts', [CompletionResultType]::ParameterValue, 'Download a run''s files')
            [CompletionResult]::new('code', 'code', [CompletionResultType]::ParameterValue, 'Show where a run''s code came from, or write it out (`--checkout DIR`)')
            [CompletionResult]::new('stop', 'stop', [CompletionResultType]::ParameterValue, 'Stop a run')
            [CompletionResult]::new('skip', 'skip', [CompletionResultType]::ParameterValue, 'Skip a run that has not started (an operation of a DAG)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a run and its files')
            [CompletionResult]::new('restart', 'restart', [CompletionResultType]::ParameterValue, 'Run a run again as a new run (`--copy` starts from a copy of its files)')
            [CompletionResult]::new('resume', 'resume', [CompletionResultType]::ParameterValue, 'Continue a finished run in place, with its files')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a run''s name, description or tags')
            [CompletionResult]::new('approve', 'approve', [CompletionResultType]::ParameterValue, 'Approve a run waiting for approval')
            [CompletionResult]::new('dashboard', 'dashboard', [CompletionResultType]::ParameterValue, 'Open a run in the web dashboard')
            [CompletionResult]::new('service', 'service', [CompletionResultType]::ParameterValue, 'Reach a running service: its address here, or its ports forwarded from the cluster')
            [CompletionResult]::new('execute', 'execute', [CompletionResultType]::ParameterValue, 'Execute a created run on this machine, in the foreground (what `polyaxon run` starts in the background)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;ops;help;ls' {
            break
        }
        'polyaxon;ops;help;get' {
            break
        }
        'polyaxon;ops;help;statuses' {
            break
        }
        'polyaxon;ops;help;notifications' {
            break
        }
        'polyaxon;ops;help;logs' {
            break
        }
        'polyaxon;ops;help;metrics' {
            break
        }
        'polyaxon;ops;help;artifacts' {
            break
        }
        'polyaxon;ops;help;code' {
            break
        }
        'polyaxon;ops;help;stop' {
            break
        }
        'polyaxon;ops;help;skip' {
            break
        }
        'polyaxon;ops;help;delete' {
            break
        }
        'polyaxon;ops;help;restart' {
            break
        }
        'polyaxon;ops;help;resume' {
            break
        }
        'polyaxon;ops;help;update' {
            break
        }
        'polyaxon;ops;help;approve' {
            break
        }
        'polyaxon;ops;help;dashboard' {
            break
        }
        'polyaxon;ops;help;service' {
            break
        }
        'polyaxon;ops;help;execute' {
            break
        }
        'polyaxon;ops;help;help' {
            break
        }
        'polyaxon;logs' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME` (default: the one set by `polyaxon init`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--uuid', '--uuid', [CompletionResultType]::ParameterName, 'The run''s uuid (default: the last run used); also `--uuid`, `-uid`, `-id`')
            [CompletionResult]::new('--no-follow', '--no-follow', [CompletionResultType]::ParameterName, 'Print what is there and stop, even while the run goes on (also `-nf`)')
            [CompletionResult]::new('--hide-time', '--hide-time', [CompletionResultType]::ParameterName, 'Without timestamps')
            [CompletionResult]::new('-a', '-a', [CompletionResultType]::ParameterName, 'With the node, pod and container of each line')
            [CompletionResult]::new('--all-info', '--all-info', [CompletionResultType]::ParameterName, 'With the node, pod and container of each line')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;config' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show the configuration and where it comes from')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Print configuration values, one per line')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Change configuration values')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Reset the configuration, credentials and caches (never the runs kept here)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;config;show' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;config;get' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;config;set' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'The server, e.g. `http://localhost:8000`; `""` goes back to the embedded store')
            [CompletionResult]::new('--verify-ssl', '--verify-ssl', [CompletionResultType]::ParameterName, 'Whether to check the server''s TLS certificate')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Seconds before a call to the server gives up')
            [CompletionResult]::new('--owner', '--owner', [CompletionResultType]::ParameterName, 'The owner of projects named without one (default: you)')
            [CompletionResult]::new('--no-api', '--no-api', [CompletionResultType]::ParameterName, 'Make no calls to the server (kept for upstream''s scripts)')
            [CompletionResult]::new('--debug', '--debug', [CompletionResultType]::ParameterName, 'Print more detail about calls')
            [CompletionResult]::new('--home', '--home', [CompletionResultType]::ParameterName, 'Keep the CLI''s files (and the embedded store) in this directory from now on')
            [CompletionResult]::new('--executor', '--executor', [CompletionResultType]::ParameterName, 'The executor of `polyaxon run` without `--executor`: `process`, `docker` or `kubernetes` (`k8s`); `""` goes back to `process`')
            [CompletionResult]::new('--disable-errors-reporting', '--disable-errors-reporting', [CompletionResultType]::ParameterName, 'Accepted for upstream''s scripts; nothing is ever reported')
            [CompletionResult]::new('--no-purge', '--no-purge', [CompletionResultType]::ParameterName, 'Keep the cached user when the host changes')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;config;purge' {
            [CompletionResult]::new('--cache-only', '--cache-only', [CompletionResultType]::ParameterName, 'Only the caches (current project, last run, user), not the configuration')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;config;help' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show the configuration and where it comes from')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Print configuration values, one per line')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Change configuration values')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Reset the configuration, credentials and caches (never the runs kept here)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;config;help;show' {
            break
        }
        'polyaxon;config;help;get' {
            break
        }
        'polyaxon;config;help;set' {
            break
        }
        'polyaxon;config;help;purge' {
            break
        }
        'polyaxon;config;help;help' {
            break
        }
        'polyaxon;login' {
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'An API token (instead of a username and password)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'An API token (instead of a username and password)')
            [CompletionResult]::new('-u', '-u', [CompletionResultType]::ParameterName, 'Your username (asked for at a terminal when not given)')
            [CompletionResult]::new('--username', '--username', [CompletionResultType]::ParameterName, 'Your username (asked for at a terminal when not given)')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Your password (asked for at a terminal when not given; visible to other processes here, so prefer the prompt or `--password-stdin`)')
            [CompletionResult]::new('--password', '--password', [CompletionResultType]::ParameterName, 'Your password (asked for at a terminal when not given; visible to other processes here, so prefer the prompt or `--password-stdin`)')
            [CompletionResult]::new('--password-stdin', '--password-stdin', [CompletionResultType]::ParameterName, 'Read the password from standard input')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;logout' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;whoami' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;token' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List your tokens (never their secrets): id, name, created, expiry')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a token; its secret is printed this once')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;tokens' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List your tokens (never their secrets): id, name, created, expiry')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a token; its secret is printed this once')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;token;ls' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;tokens;ls' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;token;create' {
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'A name to tell it by (what it is for: `ci`, `laptop`, …)')
            [CompletionResult]::new('--expiration', '--expiration', [CompletionResultType]::ParameterName, 'How long it lasts: seconds, or with a unit (`90m`, `12h`, `30d`); default: until revoked')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;tokens;create' {
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'A name to tell it by (what it is for: `ci`, `laptop`, …)')
            [CompletionResult]::new('--expiration', '--expiration', [CompletionResultType]::ParameterName, 'How long it lasts: seconds, or with a unit (`90m`, `12h`, `30d`); default: until revoked')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;token;revoke' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;token;delete' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;tokens;revoke' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;tokens;delete' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;token;help' {
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List your tokens (never their secrets): id, name, created, expiry')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a token; its secret is printed this once')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;token;help;ls' {
            break
        }
        'polyaxon;token;help;create' {
            break
        }
        'polyaxon;token;help;revoke' {
            break
        }
        'polyaxon;token;help;help' {
            break
        }
        'polyaxon;tokens;help' {
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List your tokens (never their secrets): id, name, created, expiry')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a token; its secret is printed this once')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;tokens;help;ls' {
            break
        }
        'polyaxon;tokens;help;create' {
            break
        }
        'polyaxon;tokens;help;revoke' {
            break
        }
        'polyaxon;tokens;help;help' {
            break
        }
        'polyaxon;version' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--check', '--check', [CompletionResultType]::ParameterName, 'Also check that the server''s version works with this CLI')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;init' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME`')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project, `NAME` or `OWNER/NAME`')
            [CompletionResult]::new('--polyaxonfile', '--polyaxonfile', [CompletionResultType]::ParameterName, 'Also write a starter `polyaxonfile.yml` (never over an existing one)')
            [CompletionResult]::new('--polyaxonignore', '--polyaxonignore', [CompletionResultType]::ParameterName, 'Also write a `.polyaxonignore` (files left out of code snapshots)')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Answer yes to questions (create a missing project, replace another one set here)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Answer yes to questions (create a missing project, replace another one set here)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;dashboard' {
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Open the browser without asking')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Open the browser without asking')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Print the address instead of opening a browser')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;completion' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;admin' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('deploy', 'deploy', [CompletionResultType]::ParameterValue, 'Deploy the server, its database and the executor''s RBAC to a cluster')
            [CompletionResult]::new('upgrade', 'upgrade', [CompletionResultType]::ParameterValue, 'Apply a changed config to a deploy (its generated secrets are kept)')
            [CompletionResult]::new('teardown', 'teardown', [CompletionResultType]::ParameterValue, 'Remove a deploy; the database''s volume stays unless `--delete-volumes`')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;admin;deploy' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'The deployment config (upstream''s keys where they apply; see the README)')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'The deployment config (upstream''s keys where they apply; see the README)')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context (default: the current one)')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Accepted for upstream''s scripts: the deploy is always Kubernetes manifests')
            [CompletionResult]::new('--deployment-type', '--deployment-type', [CompletionResultType]::ParameterName, 'Accepted for upstream''s scripts: the deploy is always Kubernetes manifests')
            [CompletionResult]::new('--manager-path', '--manager-path', [CompletionResultType]::ParameterName, 'Accepted for upstream''s scripts (there is no chart)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the rollout, in seconds')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, '`yaml` or `json` (with `--dry-run`)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, '`yaml` or `json` (with `--dry-run`)')
            [CompletionResult]::new('--check', '--check', [CompletionResultType]::ParameterName, 'Check the config and the cluster''s access; change nothing')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Print the manifests (`-o yaml`, the default, or `-o json`); change nothing')
            [CompletionResult]::new('--show-secrets', '--show-secrets', [CompletionResultType]::ParameterName, 'With `--dry-run`: print secrets'' values too')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;admin;upgrade' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'The deployment config (upstream''s keys where they apply; see the README)')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'The deployment config (upstream''s keys where they apply; see the README)')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context (default: the current one)')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Accepted for upstream''s scripts: the deploy is always Kubernetes manifests')
            [CompletionResult]::new('--deployment-type', '--deployment-type', [CompletionResultType]::ParameterName, 'Accepted for upstream''s scripts: the deploy is always Kubernetes manifests')
            [CompletionResult]::new('--manager-path', '--manager-path', [CompletionResultType]::ParameterName, 'Accepted for upstream''s scripts (there is no chart)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the rollout, in seconds')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, '`yaml` or `json` (with `--dry-run`)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, '`yaml` or `json` (with `--dry-run`)')
            [CompletionResult]::new('--check', '--check', [CompletionResultType]::ParameterName, 'Check the config and the cluster''s access; change nothing')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Print the manifests (`-o yaml`, the default, or `-o json`); change nothing')
            [CompletionResult]::new('--show-secrets', '--show-secrets', [CompletionResultType]::ParameterName, 'With `--dry-run`: print secrets'' values too')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;admin;teardown' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'The deployment config (upstream''s keys where they apply; see the README)')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'The deployment config (upstream''s keys where they apply; see the README)')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context (default: the current one)')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Accepted for upstream''s scripts: the deploy is always Kubernetes manifests')
            [CompletionResult]::new('--deployment-type', '--deployment-type', [CompletionResultType]::ParameterName, 'Accepted for upstream''s scripts: the deploy is always Kubernetes manifests')
            [CompletionResult]::new('--manager-path', '--manager-path', [CompletionResultType]::ParameterName, 'Accepted for upstream''s scripts (there is no chart)')
            [CompletionResult]::new('--delete-volumes', '--delete-volumes', [CompletionResultType]::ParameterName, 'Also delete the database''s volume, the secrets and the namespace (data is lost)')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;admin;help' {
            [CompletionResult]::new('deploy', 'deploy', [CompletionResultType]::ParameterValue, 'Deploy the server, its database and the executor''s RBAC to a cluster')
            [CompletionResult]::new('upgrade', 'upgrade', [CompletionResultType]::ParameterValue, 'Apply a changed config to a deploy (its generated secrets are kept)')
            [CompletionResult]::new('teardown', 'teardown', [CompletionResultType]::ParameterValue, 'Remove a deploy; the database''s volume stays unless `--delete-volumes`')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;admin;help;deploy' {
            break
        }
        'polyaxon;admin;help;upgrade' {
            break
        }
        'polyaxon;admin;help;teardown' {
            break
        }
        'polyaxon;admin;help;help' {
            break
        }
        'polyaxon;agent' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('start', 'start', [CompletionResultType]::ParameterValue, 'Claim queued runs and run them here, until SIGTERM or Ctrl-C (then drain)')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List the agents: name, version, executor, queues, load, state, last seen')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show each queue: waiting and running runs, concurrency, the agents serving it')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;agent;start' {
            [CompletionResult]::new('--queue', '--queue', [CompletionResultType]::ParameterName, 'The queues to serve, comma-separated (upstream''s `agent/queue` names work)')
            [CompletionResult]::new('--executor', '--executor', [CompletionResultType]::ParameterName, 'Where runs run: `process`, `docker` or `kubernetes` (default: as `polyaxon run`)')
            [CompletionResult]::new('--exc', '--exc', [CompletionResultType]::ParameterName, 'Where runs run: `process`, `docker` or `kubernetes` (default: as `polyaxon run`)')
            [CompletionResult]::new('--max-concurrency', '--max-concurrency', [CompletionResultType]::ParameterName, 'Runs at once')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'The agent''s name (default: HOST-PID); one agent of a name runs at a time')
            [CompletionResult]::new('--lease', '--lease', [CompletionResultType]::ParameterName, 'How long a claim lasts without a heartbeat, in seconds: an agent killed outright loses its runs to the others after this long')
            [CompletionResult]::new('--handoff', '--handoff', [CompletionResultType]::ParameterName, 'On SIGTERM, stop the running runs and queue them again for another agent instead of letting them finish')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;agent;ls' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;agent;status' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;agent;help' {
            [CompletionResult]::new('start', 'start', [CompletionResultType]::ParameterValue, 'Claim queued runs and run them here, until SIGTERM or Ctrl-C (then drain)')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List the agents: name, version, executor, queues, load, state, last seen')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show each queue: waiting and running runs, concurrency, the agents serving it')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;agent;help;start' {
            break
        }
        'polyaxon;agent;help;ls' {
            break
        }
        'polyaxon;agent;help;status' {
            break
        }
        'polyaxon;agent;help;help' {
            break
        }
        'polyaxon;connections' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List the connections: name, kind, where they point, whether they have a secret')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show a connection')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a connection (superusers)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete connections by name (superusers)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;connection' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List the connections: name, kind, where they point, whether they have a secret')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show a connection')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a connection (superusers)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete connections by name (superusers)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;connections;ls' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;connection;ls' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;connections;get' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;connection;get' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;connections;create' {
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Its name, as hooks, notifications and operations name it')
            [CompletionResult]::new('--kind', '--kind', [CompletionResultType]::ParameterName, '`slack`, `webhook`, `discord`, `mattermost`, `pagerduty`, `teams`, `git`, `registry`, `bucket`, `s3`, `gcs`, `wasb`, `volume_claim`, `host_path` or `custom`')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Where a notifier sends (a webhook''s URL; Slack''s and the others'' URLs are credentials: give them with `--secret` instead)')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'More of its non-secret part, `KEY=VALUE` (repeatable; JSON values are read as JSON): `method=GET`, `channel=#ml`, `timeout=5`, `bucket=s3://data`…')
            [CompletionResult]::new('--schema', '--schema', [CompletionResultType]::ParameterName, 'More of its non-secret part, `KEY=VALUE` (repeatable; JSON values are read as JSON): `method=GET`, `channel=#ml`, `timeout=5`, `bucket=s3://data`…')
            [CompletionResult]::new('--secret', '--secret', [CompletionResultType]::ParameterName, 'Where its secret is read by the process that sends: `env:NAME` or `file:/path`. A webhook''s is its signing key; PagerDuty''s its service key; the others'' their URL; a JSON object may give `url`, `signing_key` and `service_key`')
            [CompletionResult]::new('--description', '--description', [CompletionResultType]::ParameterName, 'description')
            [CompletionResult]::new('--tags', '--tags', [CompletionResultType]::ParameterName, 'Comma-separated tags')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;connection;create' {
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Its name, as hooks, notifications and operations name it')
            [CompletionResult]::new('--kind', '--kind', [CompletionResultType]::ParameterName, '`slack`, `webhook`, `discord`, `mattermost`, `pagerduty`, `teams`, `git`, `registry`, `bucket`, `s3`, `gcs`, `wasb`, `volume_claim`, `host_path` or `custom`')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Where a notifier sends (a webhook''s URL; Slack''s and the others'' URLs are credentials: give them with `--secret` instead)')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'More of its non-secret part, `KEY=VALUE` (repeatable; JSON values are read as JSON): `method=GET`, `channel=#ml`, `timeout=5`, `bucket=s3://data`…')
            [CompletionResult]::new('--schema', '--schema', [CompletionResultType]::ParameterName, 'More of its non-secret part, `KEY=VALUE` (repeatable; JSON values are read as JSON): `method=GET`, `channel=#ml`, `timeout=5`, `bucket=s3://data`…')
            [CompletionResult]::new('--secret', '--secret', [CompletionResultType]::ParameterName, 'Where its secret is read by the process that sends: `env:NAME` or `file:/path`. A webhook''s is its signing key; PagerDuty''s its service key; the others'' their URL; a JSON object may give `url`, `signing_key` and `service_key`')
            [CompletionResult]::new('--description', '--description', [CompletionResultType]::ParameterName, 'description')
            [CompletionResult]::new('--tags', '--tags', [CompletionResultType]::ParameterName, 'Comma-separated tags')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;connections;delete' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;connection;delete' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;connections;help' {
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List the connections: name, kind, where they point, whether they have a secret')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show a connection')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a connection (superusers)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete connections by name (superusers)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;connections;help;ls' {
            break
        }
        'polyaxon;connections;help;get' {
            break
        }
        'polyaxon;connections;help;create' {
            break
        }
        'polyaxon;connections;help;delete' {
            break
        }
        'polyaxon;connections;help;help' {
            break
        }
        'polyaxon;connection;help' {
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List the connections: name, kind, where they point, whether they have a secret')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show a connection')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a connection (superusers)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete connections by name (superusers)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;connection;help;ls' {
            break
        }
        'polyaxon;connection;help;get' {
            break
        }
        'polyaxon;connection;help;create' {
            break
        }
        'polyaxon;connection;help;delete' {
            break
        }
        'polyaxon;connection;help;help' {
            break
        }
        'polyaxon;queue' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List the queues with what waits and runs in them')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a queue, or change one')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a queue that holds no run')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;queues' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List the queues with what waits and runs in them')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a queue, or change one')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a queue that holds no run')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;queue;ls' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;queues;ls' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;queue;create' {
            [CompletionResult]::new('--concurrency', '--concurrency', [CompletionResultType]::ParameterName, 'At most this many of its runs at once (default: no limit)')
            [CompletionResult]::new('--priority', '--priority', [CompletionResultType]::ParameterName, 'Agents serving several queues claim from higher ones first')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;queues;create' {
            [CompletionResult]::new('--concurrency', '--concurrency', [CompletionResultType]::ParameterName, 'At most this many of its runs at once (default: no limit)')
            [CompletionResult]::new('--priority', '--priority', [CompletionResultType]::ParameterName, 'Agents serving several queues claim from higher ones first')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: `table`, `json`, `yaml`, `csv`, or `path=FILE` to write JSON to a file')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;queue;delete' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;queues;delete' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;queue;help' {
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List the queues with what waits and runs in them')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a queue, or change one')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a queue that holds no run')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;queue;help;ls' {
            break
        }
        'polyaxon;queue;help;create' {
            break
        }
        'polyaxon;queue;help;delete' {
            break
        }
        'polyaxon;queue;help;help' {
            break
        }
        'polyaxon;queues;help' {
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List the queues with what waits and runs in them')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a queue, or change one')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a queue that holds no run')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;queues;help;ls' {
            break
        }
        'polyaxon;queues;help;create' {
            break
        }
        'polyaxon;queues;help;delete' {
            break
        }
        'polyaxon;queues;help;help' {
            break
        }
        'polyaxon;port-forward' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The local port')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'The local port')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The namespace of the deploy')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'The namespace of the deploy')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'The release name of the deploy (`admin deploy`''s)')
            [CompletionResult]::new('--release-name', '--release-name', [CompletionResultType]::ParameterName, 'The release name of the deploy (`admin deploy`''s)')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The service: `gateway` or `api` (the server, the default), or a Service''s name')
            [CompletionResult]::new('--service', '--service', [CompletionResultType]::ParameterName, 'The service: `gateway` or `api` (the server, the default), or a Service''s name')
            [CompletionResult]::new('--address', '--address', [CompletionResultType]::ParameterName, 'The local address to listen on (also `-add`)')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context (default: the current one)')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Accepted for upstream''s scripts: the deploy is always Kubernetes')
            [CompletionResult]::new('--deployment-type', '--deployment-type', [CompletionResultType]::ParameterName, 'Accepted for upstream''s scripts: the deploy is always Kubernetes')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;server' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('start', 'start', [CompletionResultType]::ParameterValue, 'Serve the API (PostgreSQL with `--database-url`, else SQLite under `POLYAXON_HOME`)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;server;start' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The database: `postgres://user:password@host/db`, or `sqlite:///path/polyaxon.db`. Default: SQLite in `$POLYAXON_HOME/polyaxon.db`')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'The address to listen on')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The port to listen on (0 picks a free one)')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'The port to listen on (0 picks a free one)')
            [CompletionResult]::new('--artifacts-root', '--artifacts-root', [CompletionResultType]::ParameterName, 'Where runs'' files are kept. Default: `$POLYAXON_HOME/artifacts`')
            [CompletionResult]::new('--artifacts-store', '--artifacts-store', [CompletionResultType]::ParameterName, 'An object store for runs'' files: `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix` (`wasb://container@account.blob.core.windows.net/prefix`), with each cloud''s standard credentials (`AWS_*`, `GOOGLE_*`, `AZURE_*`). Checked at start. Logs and event files stay in `--artifacts-root` while the server takes them in')
            [CompletionResult]::new('--artifacts-store-option', '--artifacts-store-option', [CompletionResultType]::ParameterName, 'A setting of the store''s client, `KEY=VALUE` (repeatable): `endpoint=http://minio:9000`, `allow_http=true`, `region=eu-west-1`, … (the `object_store` builders'' keys)')
            [CompletionResult]::new('--connections', '--connections', [CompletionResultType]::ParameterName, 'Connections to create or update at start: a YAML list of `{name, kind, description, tags, schema, secret: env:NAME | file:/path}` (those created through the API are kept)')
            [CompletionResult]::new('--k8s-service-host', '--k8s-service-host', [CompletionResultType]::ParameterName, 'Where the services proxy reaches a Kubernetes run''s Service: `{name}` and `{namespace}` are filled in (a server outside the cluster can point this at a tunnel)')
            [CompletionResult]::new('--open', '--open', [CompletionResultType]::ParameterName, 'Accept requests without a token, as the single user `default` (a private machine only)')
            [CompletionResult]::new('--notify-allow-link-local', '--notify-allow-link-local', [CompletionResultType]::ParameterName, 'Let notifications go to link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10), refused by default')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;server;help' {
            [CompletionResult]::new('start', 'start', [CompletionResultType]::ParameterValue, 'Serve the API (PostgreSQL with `--database-url`, else SQLite under `POLYAXON_HOME`)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;server;help;start' {
            break
        }
        'polyaxon;server;help;help' {
            break
        }
        'polyaxon;sidecar' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The run''s artifacts directory (default: `POLYAXON_RUN_ARTIFACTS_PATH`)')
            [CompletionResult]::new('--interval', '--interval', [CompletionResultType]::ParameterName, 'Seconds between passes')
            [CompletionResult]::new('--exclude', '--exclude', [CompletionResultType]::ParameterName, 'A top-level entry of the directory never sent (repeatable; default: `code`, which the init steps fetched)')
            [CompletionResult]::new('--final-timeout', '--final-timeout', [CompletionResultType]::ParameterName, 'Seconds the last pass may take, with its retries, once told to stop (SIGTERM)')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The run''s project (default: from `POLYAXON_RUN_INSTANCE`)')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The run''s project (default: from `POLYAXON_RUN_INSTANCE`)')
            [CompletionResult]::new('--uid', '--uid', [CompletionResultType]::ParameterName, 'The run (default: from `POLYAXON_RUN_INSTANCE`)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;generate-docs' {
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'The repository''s root: writes `completions/` and `man/` in it')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'polyaxon;help' {
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run a polyaxonfile: check it, snapshot the code, start the job')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Check polyaxonfiles: syntax, schema, params and templates')
            [CompletionResult]::new('hub', 'hub', [CompletionResultType]::ParameterValue, 'The component hub: the components `hubRef` and `run --hub` find (list, print)')
            [CompletionResult]::new('project', 'project', [CompletionResultType]::ParameterValue, 'Projects: create, list, show, change, delete')
            [CompletionResult]::new('ops', 'ops', [CompletionResultType]::ParameterValue, 'Runs (operations): list, inspect, follow, stop, restart, download')
            [CompletionResult]::new('logs', 'logs', [CompletionResultType]::ParameterValue, 'Show a run''s logs (the last run used, or `--uid`), following it while it runs')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Show, set and reset the CLI''s configuration')
            [CompletionResult]::new('login', 'login', [CompletionResultType]::ParameterValue, 'Log in to a server (the embedded default needs no login)')
            [CompletionResult]::new('logout', 'logout', [CompletionResultType]::ParameterValue, 'Forget the credentials of the configured server')
            [CompletionResult]::new('whoami', 'whoami', [CompletionResultType]::ParameterValue, 'Show who you are on the configured server')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Your personal tokens on the server: list, create, revoke')
            [CompletionResult]::new('version', 'version', [CompletionResultType]::ParameterValue, 'Show the CLI''s version and the server''s')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Set the current project for this directory (kept in `./.polyaxon/`)')
            [CompletionResult]::new('dashboard', 'dashboard', [CompletionResultType]::ParameterValue, 'Open the web dashboard')
            [CompletionResult]::new('completion', 'completion', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('admin', 'admin', [CompletionResultType]::ParameterValue, 'Deploy, upgrade and tear down the server on a Kubernetes cluster')
            [CompletionResult]::new('agent', 'agent', [CompletionResultType]::ParameterValue, 'Agents: claim queued runs and run them (`agent start`), list them, show their queues')
            [CompletionResult]::new('connections', 'connections', [CompletionResultType]::ParameterValue, 'Connections: notifiers (Slack, webhooks, …) and what operations name in `connections:`')
            [CompletionResult]::new('queue', 'queue', [CompletionResultType]::ParameterValue, 'Queues runs wait in for agents: list, create or change, delete')
            [CompletionResult]::new('port-forward', 'port-forward', [CompletionResultType]::ParameterValue, 'Forward the deployed server (or another Service) to a local port, until Ctrl-C')
            [CompletionResult]::new('server', 'server', [CompletionResultType]::ParameterValue, 'Run the API server')
            [CompletionResult]::new('sidecar', 'sidecar', [CompletionResultType]::ParameterValue, 'Send a run''s files to the server from beside its job (the Kubernetes executor puts it in each pod), every few seconds and once more when told to stop')
            [CompletionResult]::new('generate-docs', 'generate-docs', [CompletionResultType]::ParameterValue, 'Write the shell completions and man pages (for packagers; the repository keeps them)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'polyaxon;help;run' {
            break
        }
        'polyaxon;help;check' {
            break
        }
        'polyaxon;help;hub' {
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List the components: name, tag, where each comes from, what it is')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Print a component''s polyaxonfile (`NAME` or `NAME:TAG`)')
            break
        }
        'polyaxon;help;hub;ls' {
            break
        }
        'polyaxon;help;hub;get' {
            break
        }
        'polyaxon;help;project' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a project')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List projects')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show a project')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a project''s name, description, tags or visibility')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a project with its runs and their files')
            [CompletionResult]::new('dashboard', 'dashboard', [CompletionResultType]::ParameterValue, 'Open a project in the web dashboard')
            break
        }
        'polyaxon;help;project;create' {
            break
        }
        'polyaxon;help;project;ls' {
            break
        }
        'polyaxon;help;project;get' {
            break
        }
        'polyaxon;help;project;update' {
            break
        }
        'polyaxon;help;project;delete' {
            break
        }
        'polyaxon;help;project;dashboard' {
            break
        }
        'polyaxon;help;ops' {
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List a project''s runs')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show a run')
            [CompletionResult]::new('statuses', 'statuses', [CompletionResultType]::ParameterValue, 'Show a run''s status history, or follow it with `--watch`')
            [CompletionResult]::new('notifications', 'notifications', [CompletionResultType]::ParameterValue, 'Show a run''s notifications and hooks: each delivery''s state, tries and last error')
            [CompletionResult]::new('logs', 'logs', [CompletionResultType]::ParameterValue, 'Show a run''s logs, following it while it runs')
            [CompletionResult]::new('metrics', 'metrics', [CompletionResultType]::ParameterValue, 'Show a run''s metrics: last values, or the series (`--plot` draws them)')
            [CompletionResult]::new('artifacts', 'artifacts', [CompletionResultType]::ParameterValue, 'Download a run''s files')
            [CompletionResult]::new('code', 'code', [CompletionResultType]::ParameterValue, 'Show where a run''s code came from, or write it out (`--checkout DIR`)')
            [CompletionResult]::new('stop', 'stop', [CompletionResultType]::ParameterValue, 'Stop a run')
            [CompletionResult]::new('skip', 'skip', [CompletionResultType]::ParameterValue, 'Skip a run that has not started (an operation of a DAG)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a run and its files')
            [CompletionResult]::new('restart', 'restart', [CompletionResultType]::ParameterValue, 'Run a run again as a new run (`--copy` starts from a copy of its files)')
            [CompletionResult]::new('resume', 'resume', [CompletionResultType]::ParameterValue, 'Continue a finished run in place, with its files')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a run''s name, description or tags')
            [CompletionResult]::new('approve', 'approve', [CompletionResultType]::ParameterValue, 'Approve a run waiting for approval')
            [CompletionResult]::new('dashboard', 'dashboard', [CompletionResultType]::ParameterValue, 'Open a run in the web dashboard')
            [CompletionResult]::new('service', 'service', [CompletionResultType]::ParameterValue, 'Reach a running service: its address here, or its ports forwarded from the cluster')
            [CompletionResult]::new('execute', 'execute', [CompletionResultType]::ParameterValue, 'Execute a created run on this machine, in the foreground (what `polyaxon run` starts in the background)')
            break
        }
        'polyaxon;help;ops;ls' {
            break
        }
        'polyaxon;help;ops;get' {
            break
        }
        'polyaxon;help;ops;statuses' {
            break
        }
        'polyaxon;help;ops;notifications' {
            break
        }
        'polyaxon;help;ops;logs' {
            break
        }
        'polyaxon;help;ops;metrics' {
            break
        }
        'polyaxon;help;ops;artifacts' {
            break
        }
        'polyaxon;help;ops;code' {
            break
        }
        'polyaxon;help;ops;stop' {
            break
        }
        'polyaxon;help;ops;skip' {
            break
        }
        'polyaxon;help;ops;delete' {
            break
        }
        'polyaxon;help;ops;restart' {
            break
        }
        'polyaxon;help;ops;resume' {
            break
        }
        'polyaxon;help;ops;update' {
            break
        }
        'polyaxon;help;ops;approve' {
            break
        }
        'polyaxon;help;ops;dashboard' {
            break
        }
        'polyaxon;help;ops;service' {
            break
        }
        'polyaxon;help;ops;execute' {
            break
        }
        'polyaxon;help;logs' {
            break
        }
        'polyaxon;help;config' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show the configuration and where it comes from')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Print configuration values, one per line')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Change configuration values')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Reset the configuration, credentials and caches (never the runs kept here)')
            break
        }
        'polyaxon;help;config;show' {
            break
        }
        'polyaxon;help;config;get' {
            break
        }
        'polyaxon;help;config;set' {
            break
        }
        'polyaxon;help;config;purge' {
            break
        }
        'polyaxon;help;login' {
            break
        }
        'polyaxon;help;logout' {
            break
        }
        'polyaxon;help;whoami' {
            break
        }
        'polyaxon;help;token' {
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List your tokens (never their secrets): id, name, created, expiry')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a token; its secret is printed this once')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke tokens by id (from `polyaxon token ls`): they stop working at once')
            break
        }
        'polyaxon;help;token;ls' {
            break
        }
        'polyaxon;help;token;create' {
            break
        }
        'polyaxon;help;token;revoke' {
            break
        }
        'polyaxon;help;version' {
            break
        }
        'polyaxon;help;init' {
            break
        }
        'polyaxon;help;dashboard' {
            break
        }
        'polyaxon;help;completion' {
            break
        }
        'polyaxon;help;admin' {
            [CompletionResult]::new('deploy', 'deploy', [CompletionResultType]::ParameterValue, 'Deploy the server, its database and the executor''s RBAC to a cluster')
            [CompletionResult]::new('upgrade', 'upgrade', [CompletionResultType]::ParameterValue, 'Apply a changed config to a deploy (its generated secrets are kept)')
            [CompletionResult]::new('teardown', 'teardown', [CompletionResultType]::ParameterValue, 'Remove a deploy; the database''s volume stays unless `--delete-volumes`')
            break
        }
        'polyaxon;help;admin;deploy' {
            break
        }
        'polyaxon;help;admin;upgrade' {
            break
        }
        'polyaxon;help;admin;teardown' {
            break
        }
        'polyaxon;help;agent' {
            [CompletionResult]::new('start', 'start', [CompletionResultType]::ParameterValue, 'Claim queued runs and run them here, until SIGTERM or Ctrl-C (then drain)')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List the agents: name, version, executor, queues, load, state, last seen')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show each queue: waiting and running runs, concurrency, the agents serving it')
            break
        }
        'polyaxon;help;agent;start' {
            break
        }
        'polyaxon;help;agent;ls' {
            break
        }
        'polyaxon;help;agent;status' {
            break
        }
        'polyaxon;help;connections' {
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List the connections: name, kind, where they point, whether they have a secret')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show a connection')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a connection (superusers)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete connections by name (superusers)')
            break
        }
        'polyaxon;help;connections;ls' {
            break
        }
        'polyaxon;help;connections;get' {
            break
        }
        'polyaxon;help;connections;create' {
            break
        }
        'polyaxon;help;connections;delete' {
            break
        }
        'polyaxon;help;queue' {
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List the queues with what waits and runs in them')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a queue, or change one')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a queue that holds no run')
            break
        }
        'polyaxon;help;queue;ls' {
            break
        }
        'polyaxon;help;queue;create' {
            break
        }
        'polyaxon;help;queue;delete' {
            break
        }
        'polyaxon;help;port-forward' {
            break
        }
        'polyaxon;help;server' {
            [CompletionResult]::new('start', 'start', [CompletionResultType]::ParameterValue, 'Serve the API (PostgreSQL with `--database-url`, else SQLite under `POLYAXON_HOME`)')
            break
        }
        'polyaxon;help;server;start' {
            break
        }
        'polyaxon;help;sidecar' {
            break
        }
        'polyaxon;help;generate-docs' {
            break
        }
        'polyaxon;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
