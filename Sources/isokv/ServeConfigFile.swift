import ArgumentParser
import Foundation

/// `isokv serve --config FILE`: a JSON object whose keys are `serve`'s long option names without the dashes
/// (`"listen"`, `"token-file"`, `"max-body"`, `"drain-delay-ms"`, `"insecure"`, …) and whose values are what the
/// option takes (strings; an integer for `drain-delay-ms` and optionally `max-body`; a boolean for `insecure`, which can
/// only turn the flag on). An option given on the command line wins over the file. An unknown key, or a value of the wrong type, is an error
/// that names the key.
///
/// ```json
/// {"listen": "0.0.0.0:7070", "token-file": "/etc/isokv/token", "backend": "postgres://isokv@db:5432/isokv"}
/// ```
enum ServeConfigFile {
    /// Every key the file may hold (the long option names, `config` excepted).
    static let keys = [
        "data", "backend", "listen", "durability", "token-file", "max-body", "drain-delay-ms", "insecure", "log-level"
    ]

    /// One value in the file.
    enum Value: Decodable {
        case string(String), integer(Int), boolean(Bool), other

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) {
                self = .boolean(b)
            } else if let i = try? c.decode(Int.self) {
                self = .integer(i)
            } else if let s = try? c.decode(String.self) {
                self = .string(s)
            } else {
                self = .other
            }
        }
    }

    /// The file's settings. Throws a `ValidationError` naming the file and, when one is at fault, the key.
    static func load(_ path: String) throws -> [String: Value] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("--config: cannot read \(path)")
        }
        let object: [String: Value]
        do {
            object = try JSONDecoder().decode([String: Value].self, from: data)
        } catch {
            throw ValidationError("--config \(path): not a JSON object of option names and values (\(error))")
        }
        for key in object.keys.sorted() where !keys.contains(key) {
            throw ValidationError(
                "--config \(path): unknown key \"\(key)\" (known: \(keys.joined(separator: ", ")))")
        }
        return object
    }
}

extension Serve {
    /// Fills every option not given on the command line from `file` (see ``ServeConfigFile``).
    mutating func apply(_ file: [String: ServeConfigFile.Value]) throws {
        func string(_ key: String) throws -> String? {
            switch file[key] {
            case nil: return nil
            case .string(let s)?: return s
            default: throw ValidationError("--config: \"\(key)\" must be a string")
            }
        }
        func integer(_ key: String) throws -> Int? {
            switch file[key] {
            case nil: return nil
            case .integer(let i)?: return i
            default: throw ValidationError("--config: \"\(key)\" must be an integer")
            }
        }
        // Every value is checked, also those the command line overrides.
        let fileData = try string("data"), fileBackend = try string("backend"), fileListen = try string("listen")
        let fileDurability = try string("durability"), fileTokenFile = try string("token-file")
        let fileDrainDelay = try integer("drain-delay-ms"), fileLogLevel = try string("log-level")
        var fileMaxBody: String?
        switch file["max-body"] {
        case nil: break
        case .string(let s)?: fileMaxBody = s
        case .integer(let i)?: fileMaxBody = String(i)
        default: throw ValidationError("--config: \"max-body\" must be a size (a number or a string such as \"2M\")")
        }
        data = data ?? fileData
        backend = backend ?? fileBackend
        listen = listen ?? fileListen
        durability = durability ?? fileDurability
        tokenFile = tokenFile ?? fileTokenFile
        maxBody = maxBody ?? fileMaxBody
        drainDelayMs = drainDelayMs ?? fileDrainDelay
        logLevel = logLevel ?? fileLogLevel
        switch file["insecure"] {
        case nil: break
        case .boolean(let b)?: insecure = insecure || b
        default: throw ValidationError("--config: \"insecure\" must be true or false")
        }
    }
}
