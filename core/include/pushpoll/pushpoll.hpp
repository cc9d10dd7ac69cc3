// pushpoll/pushpoll.hpp — the whole public API.
//
//   pushpoll::Hub hub;
//   pushpoll::Topic& t = hub.topic("trades");
//   t.publish(std::as_bytes(std::span(text)), /*tag=*/7);
//   pushpoll::Subscriber sub = t.subscribe(pushpoll::Start::oldest);
//   for (const pushpoll::Message& m : sub.poll()) use(m.seq, m.data);
#pragma once
#include "pushpoll/claim.hpp"
#include "pushpoll/errors.hpp"
#include "pushpoll/hub.hpp"
#include "pushpoll/memory.hpp"
#include "pushpoll/message.hpp"
#include "pushpoll/options.hpp"
#include "pushpoll/subscriber.hpp"
#include "pushpoll/topic.hpp"
#include "pushpoll/wake.hpp"
#include "pushpoll/wake_group.hpp"
