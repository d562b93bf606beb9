import IsoKVCore
import PostgresNIO

extension PostgresStore {
    /// The DDL of schema version 1, in order. `S` stands for the quoted schema name. See DESIGN.md ("Schema").
    static func schemaDDL(_ schema: String) -> [String] {
        let s = "\"\(schema)\""
        return [
            "CREATE SCHEMA IF NOT EXISTS \(s)",
            // One sequence for every version: nextval never returns a number twice (not even after a rollback),
            // so a key deleted and created again never gets an old version back (the ETag contract).
            "CREATE SEQUENCE IF NOT EXISTS \(s).isokv_version AS bigint",
            """
            CREATE TABLE IF NOT EXISTS \(s).isokv_kv (
                k bytea PRIMARY KEY,
                v bytea NOT NULL,
                version bigint NOT NULL DEFAULT nextval('\(s).isokv_version')
            )
            """,
            "CREATE TABLE IF NOT EXISTS \(s).isokv_meta (name text PRIMARY KEY, value bigint NOT NULL)",
            // The decimal text of a value as bigint, or 22023 (the engine's code for "not a number").
            """
            CREATE OR REPLACE FUNCTION \(s).isokv_int(v bytea) RETURNS bigint
            LANGUAGE plpgsql IMMUTABLE STRICT AS $f$
            DECLARE t text := encode(v, 'escape');
            BEGIN
                IF t !~ '^[+-]?[0-9]{1,19}$' THEN
                    RAISE EXCEPTION 'value is not a decimal 64-bit integer' USING ERRCODE = '22023';
                END IF;
                IF t::numeric NOT BETWEEN -9223372036854775808 AND 9223372036854775807 THEN
                    RAISE EXCEPTION 'value is not a decimal 64-bit integer' USING ERRCODE = '22023';
                END IF;
                RETURN t::bigint;
            END $f$
            """,
            "INSERT INTO \(s).isokv_meta (name, value) VALUES ('schema_version', \(schemaVersion)) ON CONFLICT (name) DO NOTHING"
        ]
    }

    /// Creates the schema if missing and checks its version, in one transaction serialized by an advisory lock (two
    /// stores starting at once on one database would otherwise race on `CREATE … IF NOT EXISTS`).
    func prepareSchema() async throws {
        let schema = configuration.schema
        let held = try await lease()
        var how = HeldConnection.Release.rollback
        defer { held.release(how) }
        let c = held.connection
        do {
            try await c.query("BEGIN", logger: HeldConnection.logger)
            try await c.query(
                "SELECT pg_advisory_xact_lock(hashtext('isokv schema ' || \(schema)))",
                logger: HeldConnection.logger)
            var found: Int64?? = .none  // .none: no meta table; .some(nil): no version row
            var metaExists = false
            for try await row in try await c.query(
                "SELECT to_regclass(\(schema) || '.isokv_meta') IS NOT NULL",
                logger: HeldConnection.logger)
            {
                metaExists = try row.decode(Bool.self)
            }
            if metaExists {
                found = .some(nil)
                let q = PostgresQuery(
                    unsafeSQL: "SELECT value FROM \"\(schema)\".isokv_meta WHERE name = 'schema_version'")
                for try await row in try await c.query(q, logger: HeldConnection.logger) {
                    found = .some(try row.decode(Int64.self))
                }
            }
            switch found {
            case .none:
                guard configuration.createSchema else {
                    throw IsoKVError(
                        .init(rawValue: "42P01"),
                        "schema \"\(schema)\" has no IsoKV tables and createSchema is false")
                }
                for statement in Self.schemaDDL(schema) {
                    try await c.query(PostgresQuery(unsafeSQL: statement), logger: HeldConnection.logger)
                }
            case .some(let version?) where version == Self.schemaVersion:
                break
            case .some(let version):
                throw IsoKVError(
                    .unsupportedFormat,
                    "schema \"\(schema)\" has IsoKV schema version \(version.map(String.init) ?? "none"); "
                        + "this build knows version \(Self.schemaVersion) only")
            }
            try await c.query("COMMIT", logger: HeldConnection.logger)
            how = .clean
        } catch {
            throw PostgresErrorMapping.map(error)
        }
    }
}
