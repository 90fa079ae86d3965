"""``iport-cds``: the command line. ``main(argv)`` parses, runs one command, returns the exit code.

Exit codes: 0 done; 1 the command could not do its job (a server unreachable or answering an
error); 2 bad usage or input (arguments, a missing or malformed file). Errors are one line on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from cli.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CliError

if TYPE_CHECKING:
    from population.figures import Figures

PROG = "iport-cds"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the fix, not the whole usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from exc


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from exc
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value!r}")
    return n


def _positive_float(value: str) -> float:
    try:
        n = float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from exc
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0: {value!r}")
    return n


def _version() -> str:
    try:
        return metadata.version("iport-cds")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
        return "unknown"


def _today_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--today",
        type=_date,
        metavar="YYYY-MM-DD",
        help=f"{what} (default: today in Europe/London)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="i-Port Advance commissioning criteria: CDS Hooks service, demo data, "
        "offline and population evaluation, and a CDS client for testing.",
        epilog="Exit codes: 0 done; 1 a server was unreachable or answered an error; "
        "2 bad usage or input.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the CDS Hooks service (gunicorn, demo configuration)")
    p.add_argument(
        "--bind", metavar="HOST:PORT", help="address to listen on (default 127.0.0.1:8080)"
    )
    p.add_argument("--workers", type=_positive_int, help="gunicorn worker processes (default 2)")
    p.add_argument(
        "--deploy-dir",
        metavar="DIR",
        help="folder holding gunicorn.conf.py (default: the checkout's deploy/)",
    )
    p.add_argument(
        "--print-command",
        action="store_true",
        help="print the gunicorn command instead of running it",
    )

    demo = sub.add_parser("demo", help="demo patients and synthetic populations")
    dsub = demo.add_subparsers(dest="demo_command", required=True, metavar="ACTION")
    d = dsub.add_parser("list", help="list the demo patients and their expected outcomes")
    d.add_argument("--json", action="store_true", help="print JSON instead of a table")
    d = dsub.add_parser("load", help="PUT the demo patients into a FHIR server (idempotent)")
    d.add_argument("--fhir-server", required=True, metavar="URL", help="FHIR R4 base URL")
    d.add_argument(
        "--only", action="append", metavar="NAME", help="load only this demo patient (repeatable)"
    )
    d.add_argument(
        "--mode",
        choices=("transaction", "put"),
        default="transaction",
        help="one transaction Bundle per patient (default), or one PUT per resource",
    )
    d.add_argument(
        "--timeout",
        type=_positive_float,
        default=30.0,
        metavar="S",
        help="seconds per request (default 30)",
    )
    _today_option(d, "resolve the demo patients' relative dates against this day")
    d = dsub.add_parser("export", help="write the demo Bundles with their dates resolved")
    d.add_argument(
        "--out", required=True, metavar="DIR", help="folder to write <name>.json files to"
    )
    d.add_argument(
        "--only", action="append", metavar="NAME", help="export only this demo patient (repeatable)"
    )
    _today_option(d, "resolve relative dates against this day")
    d = dsub.add_parser("generate-population", help="write a synthetic Bulk FHIR NDJSON population")
    d.add_argument("--patients", type=_positive_int, required=True, metavar="N")
    d.add_argument("--out", required=True, metavar="DIR")
    d.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    _today_option(d, "the day the data is dated relative to")

    p = sub.add_parser(
        "evaluate",
        help="evaluate one patient's record offline (Bundle, resource or NDJSON), or a population",
    )
    p.add_argument("file", nargs="?", metavar="FILE", help="a FHIR Bundle, resource or NDJSON file")
    p.add_argument(
        "--population",
        metavar="DIR",
        help="a folder of Bulk FHIR NDJSON files: one CSV row per patient and policy, and an "
        "uptake-gap report (HTML)",
    )
    p.add_argument(
        "--patient", metavar="ID", help="the patient to evaluate when FILE holds several"
    )
    p.add_argument(
        "--json", action="store_true", help="print the decision as the card's JSON extension"
    )
    p.add_argument(
        "--out", metavar="CSV", help="--population: write the CSV here (default: stdout)"
    )
    p.add_argument(
        "--workers", type=_positive_int, help="--population: worker processes (default: every core)"
    )
    p.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=250,
        help="--population: patients per task (default 250)",
    )
    p.add_argument(
        "--summary-json", metavar="FILE", help="--population: also write counts and timings as JSON"
    )
    p.add_argument(
        "--policy",
        action="append",
        default=[],
        help="policy name or file (FILE: default the first policy the service enables; "
        "--population: repeat it, "
        "default every policy the service enables)",
    )
    p.add_argument(
        "--report",
        metavar="HTML",
        help="--population: write the uptake-gap report here (default: beside --out, .html)",
    )
    p.add_argument(
        "--places",
        metavar="CSV",
        help="--population: practice → place table (practice_code,place) for the place of each "
        "person",
    )
    p.add_argument(
        "--pcn-table",
        metavar="CSV",
        help="--population: practice → primary care network table (practice_ods,pcn_code,pcn_name)",
    )
    p.add_argument(
        "--postcode-lsoa",
        metavar="CSV",
        help="--population: postcode → small area lookup (postcode,lsoa_code); with "
        "--lsoa-imd, for the deprivation quintile of each person's small area",
    )
    p.add_argument(
        "--lsoa-imd",
        metavar="CSV",
        help="--population: small area → deprivation quintile lookup (lsoa_code,imd_quintile; "
        "1 = most deprived)",
    )
    p.add_argument(
        "--extract-date",
        type=_date,
        metavar="YYYY-MM-DD",
        help="--population: the day the export was taken: who is alive and registered "
        "(default: the manifest's transactionTime, else --today)",
    )
    p.add_argument(
        "--previous",
        metavar="JSON",
        help="--population: the previous run's --summary-json, for the change in uptake and gap",
    )
    p.add_argument(
        "--tables-csv",
        metavar="CSV",
        help="--population: write every table of the report as CSV here (default: beside the "
        "report, .tables.csv)",
    )
    p.add_argument(
        "--measure-report",
        metavar="JSON",
        help="--population: write the FHIR MeasureReport here (default: beside the report, "
        ".measurereport.json)",
    )
    p.add_argument(
        "--valueset-extra-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="local ValueSet files to add",
    )
    p.add_argument(
        "--today",
        type=_date,
        metavar="YYYY-MM-DD",
        help="evaluate as on this day (default: FILE: today in Europe/London; --population: "
        "the extract date, else today)",
    )

    p = sub.add_parser(
        "hook",
        help="act as an EHR: call every service of a hook and show the cards",
        description="Calls every service of the hook, as an EHR does; a service that fails is "
        "reported and the others are still called; exit 1 if any failed.",
    )
    p.add_argument("hook", metavar="HOOK", help="patient-view, order-select or order-sign")
    p.add_argument(
        "--service", required=True, metavar="URL", help="the CDS service's base (or discovery) URL"
    )
    p.add_argument(
        "--fhir-server", required=True, metavar="URL", help="the FHIR server the patient is on"
    )
    p.add_argument(
        "--patient", required=True, metavar="ID", help="the Patient id on that FHIR server"
    )
    p.add_argument(
        "--service-id",
        metavar="ID",
        help="call only this service (default: every service for the hook)",
    )
    p.add_argument(
        "--prefetch",
        action="store_true",
        help="fill the service's prefetch templates first, as an EHR would",
    )
    p.add_argument(
        "--user",
        default="Practitioner/iport-cds-cli",
        metavar="REF",
        help="context.userId (default Practitioner/iport-cds-cli)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the services' JSON answers, keyed by service id",
    )
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=30.0,
        metavar="S",
        help="seconds per request (default 30)",
    )
    p.add_argument(
        "--jwt-key",
        metavar="PEM_FILE",
        help="sign each request with this EC P-384 private key (ES384)",
    )
    p.add_argument("--jwt-iss", metavar="ISS", help="the JWT's issuer (this client's identifier)")
    p.add_argument(
        "--jwt-kid", metavar="KID", help="the key id the service knows the public key by"
    )
    p.add_argument(
        "--jwt-jku", metavar="URL", help="optional: the JWK Set URL to put in the JWT header"
    )
    p.add_argument(
        "--jwt-tenant",
        metavar="TENANT",
        help="optional: the JWT's tenant claim, for an issuer that signs for several tenants",
    )
    p = sub.add_parser(
        "policy", help="check policy files: every field, rule parameter and value set named"
    )
    psub = p.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    c = psub.add_parser("check", help="load each policy file as the service would, or say why not")
    c.add_argument("files", nargs="+", metavar="FILE", help="policy files (or shipped names)")
    return parser


# -- commands --------------------------------------------------------------------------------------
def _today(args: argparse.Namespace) -> date:
    from cli.evaluate import london_today

    today: date | None = args.today
    return today or london_today()


def _cmd_serve(args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    from cli.serve import run_serve

    run_serve(args.deploy_dir, args.bind, args.workers, args.print_command, out, err)


def _cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    from cli import demo_cmd
    from cli.http import check_base_url

    if args.demo_command == "list":
        demo_cmd.run_list(out, args.json)
    elif args.demo_command == "load":
        base = check_base_url(args.fhir_server, "--fhir-server")
        demo_cmd.run_load(base, args.only, _today(args), args.mode, args.timeout, out, err)
    elif args.demo_command == "export":
        demo_cmd.run_export(Path(args.out), args.only, _today(args), out)
    else:
        demo_cmd.run_generate(Path(args.out), args.patients, args.seed, _today(args), out, err)


def _cmd_evaluate(args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    from cli.evaluate import load_core, run_evaluate

    if bool(args.file) == bool(args.population):
        raise CliError("give either FILE or --population DIR", EXIT_USAGE)
    given: tuple[tuple[str, object], ...]
    if args.population:
        given = (("--patient", args.patient), ("--json", args.json))
    else:
        given = (
            ("--out", args.out),
            ("--workers", args.workers),
            ("--summary-json", args.summary_json),
            ("--report", args.report),
            ("--places", args.places),
            ("--pcn-table", args.pcn_table),
            ("--postcode-lsoa", args.postcode_lsoa),
            ("--lsoa-imd", args.lsoa_imd),
            ("--extract-date", args.extract_date),
            ("--previous", args.previous),
            ("--measure-report", args.measure_report),
            ("--tables-csv", args.tables_csv),
            ("a second --policy", args.policy[1:]),
        )
    wrong = [name for name, value in given if value]
    if wrong:
        mode = "--population" if args.population else "FILE"
        raise CliError(f"{', '.join(wrong)} cannot be used with {mode}", EXIT_USAGE)
    from service.config import read_settings

    # A population run evaluates every policy the deployment enables, in one pass.
    enabled = list(read_settings()["POLICIES"])
    policies = args.policy or (enabled if args.population else enabled[:1])
    for policy in policies:  # a bad policy fails before any work
        core = load_core(policy, args.valueset_extra_dir)
    if args.file:
        run_evaluate(core, Path(args.file), _today(args), args.patient, args.json, out)
        return
    _population(args, out, err)


def _population(args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    from disclosure import Disclosure, DisclosureSettingError
    from population.engine import Lookups, PopulationSummary, run_population, summary_text
    from population.errors import PopulationError
    from service.config import read_settings, valueset_dirs

    settings = read_settings()  # the deployment's value sets, parameters and disclosure control
    try:
        disclosure = Disclosure.from_setting(settings["SMALL_NUMBER_THRESHOLD"])
    except DisclosureSettingError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc

    def run(stream: TextIO) -> PopulationSummary:
        try:
            return _run(stream)
        except PopulationError as exc:
            raise CliError(exc.message, EXIT_USAGE if exc.bad_input else EXIT_FAILURE) from exc

    def _run(stream: TextIO) -> PopulationSummary:
        return run_population(
            Path(args.population),
            stream,
            err,
            today=_today(args),
            # without --today, judged as on the day of the extract, not the day of the run
            on_extract_date=args.today is None,
            policies=args.policy or list(settings["POLICIES"]),
            policy_dir=settings.get("POLICY_DIR"),
            valueset_dirs=valueset_dirs(settings, args.valueset_extra_dir),
            parameters=settings.get("POLICY_PARAMETERS") or {},
            workers=args.workers,
            chunk_size=args.chunk_size,
            places_file=args.places,
            lookup_files=Lookups(args.pcn_table, args.postcode_lsoa, args.lsoa_imd),
            extract_date=args.extract_date,
        )

    previous = _previous(args.previous) if args.previous else None
    if args.out:
        try:
            csv_file = Path(args.out).open("w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as exc:
            raise CliError(
                f"--out {args.out}: cannot write ({exc.strerror or exc})", EXIT_USAGE
            ) from exc
        with csv_file:
            summary = run(csv_file)
    else:
        summary = run(out)
    err.write(summary_text(summary))
    report = args.report or (str(Path(args.out).with_suffix(".html")) if args.out else None)
    if report:
        from population.report import render_report

        html = render_report(
            summary,
            today=date.fromisoformat(summary.evaluated_on),
            source=Path(args.population).name,
            disclosure=disclosure,
            previous=previous[0] if previous else None,
            previous_extract=previous[1] if previous else "",
        )
        _write("--report", report, html)
        err.write(f"uptake-gap report: {report}\n")
    tables = args.tables_csv or (str(Path(report).with_suffix(".tables.csv")) if report else None)
    if tables:
        from population.report import tables_csv

        _write("--tables-csv", tables, tables_csv(summary.tally, disclosure))
        err.write(f"tables (CSV): {tables}\n")
    measure = args.measure_report or (
        str(Path(report).with_suffix(".measurereport.json")) if report else None
    )
    if measure:
        from population.measure import measure_report

        doc = measure_report(
            summary.tally,
            disclosure,
            evaluated=summary.evaluated_on,
            extract_date=summary.extract_date,
        )
        _write("--measure-report", measure, json.dumps(doc, indent=2) + "\n")
        err.write(f"MeasureReport: {measure}\n")
    if args.summary_json:
        _write("--summary-json", args.summary_json, json.dumps(summary.as_json(), indent=2) + "\n")


def _write(option: str, path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(
            f"{option} {path}: cannot write ({exc.strerror or exc})", EXIT_USAGE
        ) from exc


def _previous(path: str) -> tuple[dict[str, Figures], str]:
    """The previous run's figures and extract date, from its summary JSON."""
    from population.headline import previous_figures

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("it is not a JSON object")
        return previous_figures(doc), str(doc.get("extract_date") or "")
    except (OSError, ValueError) as exc:
        raise CliError(f"--previous {path}: cannot be used ({exc})", EXIT_USAGE) from exc


def _cmd_hook(args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    from cli.auth import load_signer
    from cli.hook import HOOKS, HookOptions, run_hook, service_base
    from cli.http import check_base_url

    if args.hook not in HOOKS:
        raise CliError(f"unknown hook {args.hook!r}: use one of {', '.join(HOOKS)}", EXIT_USAGE)
    jwt_opts = [args.jwt_key, args.jwt_iss, args.jwt_kid]
    if (args.jwt_jku or args.jwt_tenant) and not args.jwt_key:
        raise CliError(
            "--jwt-jku and --jwt-tenant need --jwt-key, --jwt-iss and --jwt-kid", EXIT_USAGE
        )
    if any(jwt_opts) and not all(jwt_opts):
        raise CliError("--jwt-key, --jwt-iss and --jwt-kid go together: give all three", EXIT_USAGE)
    signer = (
        load_signer(args.jwt_key, args.jwt_iss, args.jwt_kid, args.jwt_jku, args.jwt_tenant)
        if args.jwt_key
        else None
    )
    opts = HookOptions(
        hook=args.hook,
        service=service_base(check_base_url(args.service, "--service")),
        fhir_server=check_base_url(args.fhir_server, "--fhir-server"),
        patient=args.patient,
        user=args.user,
        service_id=args.service_id,
        prefetch=args.prefetch,
        as_json=args.json,
        timeout=args.timeout,
        signer=signer,
    )
    run_hook(opts, out, err)


def _cmd_policy(args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    """``policy check``: each file — a policy, or a part policies include — loaded and checked
    as at start-up; the first fault is the one-line error (file and field), and nothing after
    it is checked."""
    from policy import PolicyError, load_policy
    from policy.loading import check_part, is_part_file, read_part
    from valuesets import ValueSetError, load_value_sets

    del err
    vsl = load_value_sets()
    for name in args.files:
        try:
            if is_part_file(Path(name)):
                part = read_part(Path(name).resolve())
                vsl.require(check_part(part))
                out.write(
                    f"{name}: ok (part {part['part']['id']}: "
                    f"{len(part.get('criteria', [])) + len(part.get('derived', []))} criteria, "
                    f"{len(part.get('parameters', {}))} parameters)\n"
                )
                continue
            policy = load_policy(name)
            vsl.require(policy.value_sets)
        except (PolicyError, ValueSetError) as exc:
            message = str(exc)
            if not message.startswith(Path(name).name):
                message = f"{Path(name).name}: {message}"
            raise CliError(message, EXIT_USAGE) from exc
        out.write(
            f"{name}: ok ({policy.info.id}: {len(policy.criterion_ids)} criteria, "
            f"{len(policy.services)} services, {len(policy.value_sets)} value sets)\n"
        )


_COMMANDS = {
    "serve": _cmd_serve,
    "demo": _cmd_demo,
    "evaluate": _cmd_evaluate,
    "hook": _cmd_hook,
    "policy": _cmd_policy,
}


def main(argv: Sequence[str] | None = None) -> int:
    out, err = sys.stdout, sys.stderr
    for stream in (out, err):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")  # a decision is still shown on an ASCII terminal
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        _COMMANDS[args.command](args, out, err)
    except CliError as exc:
        out.flush()
        err.write(f"{PROG}: error: {exc.message}\n")
        return exc.code
    except KeyboardInterrupt:
        err.write(f"{PROG}: interrupted\n")
        return 130
    except BrokenPipeError:  # e.g. piped into head
        return EXIT_OK
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
