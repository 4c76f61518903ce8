// Sends a checkout with the official Segment Node library, unchanged, to a pronto server.
// Usage: node send.mjs <host> <writeKey> <runId>. Exits non-zero if the library reports any delivery error.
import { Analytics } from '@segment/analytics-node'

const [host, writeKey, runId] = process.argv.slice(2)
const analytics = new Analytics({ writeKey, host, flushInterval: 200, maxRetries: 2 })
let failed = false
analytics.on('error', (err) => {
  failed = true
  console.error('delivery error:', err?.reason ?? err)
})

const userId = `node-${runId}`
analytics.identify({ userId, anonymousId: `anon-${runId}`, traits: { email: `${userId}@example.com`, name: 'Node Buyer' } })
analytics.track({
  anonymousId: `anon-${runId}`,
  event: 'Checkout Started',
  properties: {
    checkout_id: `chk-${runId}`,
    value: 54.5,
    currency: 'EUR',
    checkout_url: `https://shop.example/checkout/chk-${runId}`,
    products: [
      { product_id: 'p-1', name: 'Mug', variant: 'blue', price: 12.25, quantity: 2, image_url: 'https://shop.example/mug.png' },
      { product_id: 'p-2', name: 'Tea', price: 30, quantity: 1 },
    ],
  },
})
analytics.page({ userId, name: 'Checkout', properties: { url: 'https://shop.example/checkout' } })
analytics.screen({ userId, name: 'Cart' })
analytics.group({ userId, groupId: `acct-${runId}`, traits: { plan: 'pro' } })
analytics.alias({ userId, previousId: `prev-${runId}` })
await analytics.closeAndFlush({ timeout: 10000 })
if (failed) process.exit(1)
console.log('sent')
