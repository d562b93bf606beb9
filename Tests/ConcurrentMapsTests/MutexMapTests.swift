import Testing
import ConcurrentMaps

@Suite struct MutexMapSmoke {
    @Test func storeLoad() {
        let m = MutexMap<Int, Int>()
        m.store(1, 10)
        #expect(m.load(1) == 10)
        #expect(m.compareAndSwap(1, old: 10, new: 11))
        #expect(!m.compareAndSwap(1, old: 10, new: 12))
        #expect(m.load(1) == 11)
    }
}
