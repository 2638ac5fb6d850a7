"""Dump a hive through regipy (an independent reader) in a normalised,
line-oriented form: K<TAB>path and V<TAB>path<TAB>name<TAB>type<TAB>data.
Data is only printed for types regipy decodes losslessly (DWORD, QWORD);
other types print '-'. Optional second argument: path of a transaction log
list (primary,log1[,log2]) to recover first with regipy's own replay."""
import sys
from regipy.registry import RegistryHive

path = sys.argv[1]
if len(sys.argv) > 2:
    from regipy.recovery import apply_transaction_logs
    logs = sys.argv[2].split(",")
    out = sys.argv[3]
    apply_transaction_logs(path, logs[0], secondary_log_path=logs[1] if len(logs) > 1 else None,
                           restored_hive_path=out)
    print(out)
    sys.exit(0)

h = RegistryHive(path)
for sk in h.recurse_subkeys(as_json=False, fetch_values=True):
    p = sk.path.lstrip("\\")
    # regipy prefixes paths with the root key name when walking from the root.
    print("K\t" + p)
    for v in sk.values or []:
        name = "" if v.name == "(default)" else v.name
        t = v.value_type
        d = "-"
        if t in ("REG_DWORD", "REG_QWORD") and isinstance(v.value, int):
            d = str(v.value)
        print("V\t%s\t%s\t%s\t%s" % (p, name, t, d))
